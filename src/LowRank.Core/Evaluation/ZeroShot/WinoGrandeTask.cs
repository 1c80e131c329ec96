using System.Text.Json;

namespace LowRank.Evaluation.ZeroShot;

/// <summary>
/// WinoGrande, Hugging Face layout <c>{"sentence" with one "_", "option1", "option2", "answer": "1"|"2"}</c>, scored
/// by partial evaluation as lm-evaluation-harness does (Trinh &amp; Le 2018): the contexts are the sentence up to "_"
/// with each option put in, the shared continuation is " " + the rest of the sentence after "_" (stripped); the
/// choice whose context makes that continuation likelier wins. acc only (the harness reports no acc_norm).
/// </summary>
public static class WinoGrandeTask
{
    public static MultipleChoiceItem Item(JsonElement record, string id)
    {
        var sentence = TaskFile.RequiredString(record, "sentence");
        var blank = sentence.IndexOf('_', StringComparison.Ordinal);
        if (blank < 0) throw new TaskRecordException("the sentence has no '_' to fill");
        string[] options = [TaskFile.RequiredString(record, "option1"), TaskFile.RequiredString(record, "option2")];
        var answer = TaskFile.RequiredIndex(record, "answer");
        if (answer is not (1 or 2)) throw new TaskRecordException($"answer must be \"1\" or \"2\" (got {answer})");
        var target = " " + sentence[(blank + 1)..].Trim();
        return new MultipleChoiceItem(id, [.. options.Select(o => new ChoiceRequest(sentence[..blank] + o, target))], answer - 1, null);
    }
}
