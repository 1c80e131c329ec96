using System.Text.Json;
using System.Text.RegularExpressions;

namespace LowRank.Evaluation.ZeroShot;

/// <summary>
/// HellaSwag, Hugging Face layout <c>{"activity_label", "ctx_a", "ctx_b", "ctx", "endings": [4], "label"}</c>.
/// lm-evaluation-harness preprocessing: context = preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b))
/// (with only <c>ctx</c> given: ctx in place of the last two; without activity_label: no "label: " prefix),
/// continuations " " + preprocess(ending); preprocess = strip, " [title]" → ". ", remove "[...]", "  " → " ";
/// capitalize = Python's str.capitalize (first character upper case, the rest lower case).
/// </summary>
public static partial class HellaSwagTask
{
    public static MultipleChoiceItem Item(JsonElement record, string id)
    {
        string context;
        if (record.TryGetProperty("ctx_a", out _))
            context = TaskFile.RequiredString(record, "ctx_a") + " " + Capitalize(TaskFile.OptionalString(record, "ctx_b") ?? "");
        else
            context = TaskFile.RequiredString(record, "ctx");
        var activity = TaskFile.OptionalString(record, "activity_label");
        var query = Preprocess(activity is null ? context : activity + ": " + context);
        if (!record.TryGetProperty("endings", out var endingsElement)) throw new TaskRecordException("missing field 'endings'");
        var endings = TaskFile.RequiredStrings(endingsElement, "endings").Select(Preprocess).ToList();
        return TaskFile.SharedContext(id, query, endings, TaskFile.RequiredIndex(record, "label"));
    }

    public static string Preprocess(string text)
    {
        text = text.Trim();
        text = text.Replace(" [title]", ". ");
        text = Bracketed().Replace(text, "");
        return text.Replace("  ", " ");
    }

    /// <summary>Python's str.capitalize.</summary>
    public static string Capitalize(string text) =>
        text.Length == 0 ? text : char.ToUpperInvariant(text[0]) + text[1..].ToLowerInvariant();

    [GeneratedRegex(@"\[.*?\]")]
    private static partial Regex Bracketed();
}
