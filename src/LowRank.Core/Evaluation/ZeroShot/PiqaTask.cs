using System.Text.Json;

namespace LowRank.Evaluation.ZeroShot;

/// <summary>PIQA, Hugging Face layout <c>{"goal", "sol1", "sol2", "label"}</c> (label 0 or 1). As lm-evaluation-harness
/// piqa: context "Question: {goal}\nAnswer:", continuations " {sol1}" and " {sol2}".</summary>
public static class PiqaTask
{
    public static MultipleChoiceItem Item(JsonElement record, string id)
    {
        var goal = TaskFile.RequiredString(record, "goal");
        string[] solutions = [TaskFile.RequiredString(record, "sol1"), TaskFile.RequiredString(record, "sol2")];
        return TaskFile.SharedContext(id, $"Question: {goal}\nAnswer:", solutions, TaskFile.RequiredIndex(record, "label"));
    }
}
