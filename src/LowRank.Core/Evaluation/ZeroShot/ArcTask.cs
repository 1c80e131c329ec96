using System.Text.Json;

namespace LowRank.Evaluation.ZeroShot;

/// <summary>
/// ARC (AI2 Reasoning Challenge), Hugging Face layout <c>{"question": "...", "choices": {"text": [...], "label": [...]},
/// "answerKey": "B"}</c>, or AI2's own layout with <c>"question": {"stem": "...", "choices": [{"text", "label"}]}</c>.
/// As lm-evaluation-harness arc_easy/arc_challenge: context "Question: {question}\nAnswer:", continuation " {choice}",
/// gold = the position of answerKey among the labels.
/// </summary>
public static class ArcTask
{
    public static MultipleChoiceItem Item(JsonElement record, string id)
    {
        string question;
        List<string> texts, labels;
        if (!record.TryGetProperty("question", out var questionElement)) throw new TaskRecordException("missing field 'question'");
        if (questionElement.ValueKind == JsonValueKind.Object)
        {
            question = TaskFile.RequiredString(questionElement, "stem");
            if (!questionElement.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array)
                throw new TaskRecordException("field 'question.choices' is missing or not an array");
            texts = [];
            labels = [];
            foreach (var choice in choices.EnumerateArray())
            {
                texts.Add(TaskFile.RequiredString(choice, "text"));
                labels.Add(TaskFile.RequiredString(choice, "label"));
            }
        }
        else
        {
            question = TaskFile.RequiredString(record, "question");
            if (!record.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Object)
                throw new TaskRecordException("field 'choices' must be an object with 'text' and 'label' arrays");
            texts = choices.TryGetProperty("text", out var t) ? TaskFile.RequiredStrings(t, "choices.text") : throw new TaskRecordException("missing field 'choices.text'");
            labels = choices.TryGetProperty("label", out var l) ? TaskFile.RequiredStrings(l, "choices.label") : throw new TaskRecordException("missing field 'choices.label'");
        }
        if (texts.Count != labels.Count) throw new TaskRecordException($"{texts.Count} choice texts but {labels.Count} labels");
        var answerKey = TaskFile.OptionalString(record, "answerKey") ?? throw new TaskRecordException("missing field 'answerKey'");
        var gold = labels.IndexOf(answerKey);
        if (gold < 0) throw new TaskRecordException($"answerKey '{answerKey}' is not one of the labels {string.Join(", ", labels)}");
        return TaskFile.SharedContext(id, $"Question: {question}\nAnswer:", texts, gold);
    }
}
