using System.Globalization;
using System.Text;
using System.Text.Json;
using LowRank.Data;

namespace LowRank.Evaluation.ZeroShot;

/// <summary>The JSON Lines layouts understood, named after the benchmark whose Hugging Face layout they follow.</summary>
public enum TaskFormat
{
    Arc,
    Piqa,
    HellaSwag,
    WinoGrande,
}

/// <summary>One scored option: the log-likelihood of <see cref="Continuation"/> given <see cref="Context"/>.</summary>
public sealed record ChoiceRequest(string Context, string Continuation);

/// <summary>
/// One multiple-choice question as lm-evaluation-harness scores it: a (context, continuation) pair per choice, the
/// index of the right one, and per choice the character count that acc_norm divides by (the harness's
/// <c>len(choice)</c>: Unicode code points of the choice text without the leading space; null where the harness reports
/// no acc_norm, as for WinoGrande).
/// </summary>
public sealed record MultipleChoiceItem(string Id, IReadOnlyList<ChoiceRequest> Choices, int Gold, IReadOnlyList<int>? NormLengths);

public sealed record MultipleChoiceTask(string Name, TaskFormat Format, string Path, IReadOnlyList<MultipleChoiceItem> Items);

/// <summary>
/// Reads a task file: one JSON object per non-blank line in one of the <see cref="TaskFormat"/> layouts (detected from
/// the first record's fields unless given as <c>arc:FILE</c>, <c>piqa:FILE</c>, <c>hellaswag:FILE</c>,
/// <c>winogrande:FILE</c>). Any problem is <see cref="ErrorCodes.BadTaskFile"/> with the line number.
/// </summary>
public static class TaskFile
{
    public static MultipleChoiceTask Read(string spec)
    {
        var (format, path) = ParseSpec(spec);
        string text;
        try
        {
            text = File.ReadAllText(path, new UTF8Encoding(false, true));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DecoderFallbackException or ArgumentException or NotSupportedException)
        {
            throw new LrkException(ErrorCodes.BadTaskFile, $"cannot read task file '{path}': {e.Message}", e);
        }
        var items = new List<MultipleChoiceItem>();
        var records = JsonLineRecords.Parse(text, (line, e) => Bad(path, line, $"not valid JSON ({e.Message})", e));
        foreach (var (lineNumber, record) in records)
        {
            if (record.ValueKind != JsonValueKind.Object) throw Bad(path, lineNumber, "not a JSON object");
            format ??= Detect(record) ?? throw Bad(path, lineNumber,
                "unknown layout: expected ARC (question, choices, answerKey), PIQA (goal, sol1, sol2, label), " +
                "HellaSwag (ctx or ctx_a/ctx_b, endings, label) or WinoGrande (sentence, option1, option2, answer) fields");
            var id = OptionalString(record, "id") ?? OptionalString(record, "ind") ?? $"{System.IO.Path.GetFileName(path)}:{lineNumber}";
            try
            {
                var item = format.Value switch
                {
                    TaskFormat.Arc => ArcTask.Item(record, id),
                    TaskFormat.Piqa => PiqaTask.Item(record, id),
                    TaskFormat.HellaSwag => HellaSwagTask.Item(record, id),
                    TaskFormat.WinoGrande => WinoGrandeTask.Item(record, id),
                    _ => throw new InvalidOperationException(),
                };
                items.Add(item);
            }
            catch (TaskRecordException e)
            {
                throw Bad(path, lineNumber, e.Message, e);
            }
        }
        if (items.Count == 0 || format is null) throw new LrkException(ErrorCodes.BadTaskFile, $"task file '{path}' has no items");
        return new MultipleChoiceTask(System.IO.Path.GetFileNameWithoutExtension(path), format.Value, path, items);
    }

    public static (TaskFormat? Format, string Path) ParseSpec(string spec)
    {
        var colon = spec.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0 && !File.Exists(spec) && Enum.TryParse<TaskFormat>(spec[..colon], ignoreCase: true, out var format))
            return (format, spec[(colon + 1)..]);
        return (null, spec);
    }

    public static TaskFormat? Detect(JsonElement record)
    {
        bool Has(string name) => record.TryGetProperty(name, out _);
        if (Has("question") && (Has("choices") || record.GetProperty("question").ValueKind == JsonValueKind.Object) && Has("answerKey")) return TaskFormat.Arc;
        if (Has("goal") && Has("sol1") && Has("sol2")) return TaskFormat.Piqa;
        if (Has("endings") && (Has("ctx") || Has("ctx_a"))) return TaskFormat.HellaSwag;
        if (Has("sentence") && Has("option1") && Has("option2")) return TaskFormat.WinoGrande;
        return null;
    }

    private static LrkException Bad(string path, int line, string message, Exception? inner = null) =>
        new(ErrorCodes.BadTaskFile, $"{path} line {line}: {message}", inner);

    internal static string RequiredString(JsonElement record, string name)
    {
        if (!record.TryGetProperty(name, out var value)) throw new TaskRecordException($"missing field '{name}'");
        if (value.ValueKind != JsonValueKind.String) throw new TaskRecordException($"field '{name}' is {value.ValueKind}, not a string");
        return value.GetString()!;
    }

    internal static string? OptionalString(JsonElement record, string name) =>
        record.TryGetProperty(name, out var value) ? value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Number => value.GetRawText(),
            _ => null,
        } : null;

    /// <summary>An integer given as a JSON number or a string of digits (the HF datasets use both).</summary>
    internal static int RequiredIndex(JsonElement record, string name)
    {
        if (!record.TryGetProperty(name, out var value)) throw new TaskRecordException($"missing field '{name}'");
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number)) return number;
        if (value.ValueKind == JsonValueKind.String && int.TryParse(value.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out number)) return number;
        throw new TaskRecordException($"field '{name}' is not an integer ({value.GetRawText()})");
    }

    internal static List<string> RequiredStrings(JsonElement array, string name)
    {
        if (array.ValueKind != JsonValueKind.Array) throw new TaskRecordException($"field '{name}' is not an array");
        var list = new List<string>();
        foreach (var element in array.EnumerateArray())
        {
            if (element.ValueKind != JsonValueKind.String) throw new TaskRecordException($"field '{name}' holds a {element.ValueKind}, not a string");
            list.Add(element.GetString()!);
        }
        return list;
    }

    internal static int CodePoints(string text)
    {
        var count = 0;
        foreach (var _ in text.EnumerateRunes()) count++;
        return count;
    }

    /// <summary>Choices sharing one context, each continued after the harness's target delimiter " ".</summary>
    internal static MultipleChoiceItem SharedContext(string id, string context, IReadOnlyList<string> choices, int gold)
    {
        if (choices.Count < 2) throw new TaskRecordException($"needs at least 2 choices (has {choices.Count})");
        if (gold < 0 || gold >= choices.Count) throw new TaskRecordException($"answer index {gold} is outside the {choices.Count} choices");
        return new MultipleChoiceItem(id, [.. choices.Select(c => new ChoiceRequest(context, " " + c))], gold, [.. choices.Select(CodePoints)]);
    }
}

/// <summary>A malformed record; <see cref="TaskFile"/> adds the file and line.</summary>
public sealed class TaskRecordException : Exception
{
    public TaskRecordException(string message) : base(message) { }
    public TaskRecordException() { }
    public TaskRecordException(string message, Exception inner) : base(message, inner) { }
}
