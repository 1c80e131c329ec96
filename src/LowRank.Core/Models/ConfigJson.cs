using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank.Models;

/// <summary>
/// Typed, strict access to the keys of a JSON config object. Every failure is an <see cref="LrkException"/> with
/// <see cref="ErrorCodes.BadConfig"/> naming the source file and the key path (<c>rope_scaling.factor</c>).
/// A key whose value is JSON <c>null</c> counts as absent, as it does for transformers.
/// </summary>
internal sealed class ConfigJson
{
    private readonly JsonObject _json;
    private readonly string _prefix;

    public ConfigJson(JsonObject json, string source, string prefix = "")
    {
        _json = json;
        Source = source;
        _prefix = prefix;
    }

    public string Source { get; }

    public bool Has(string key) => _json.ContainsKey(key);

    public bool IsPresentAndNull(string key) => _json.TryGetPropertyValue(key, out var node) && node is null;

    public int RequiredPositiveInt(string key) =>
        OptionalPositiveInt(key) ?? throw Bad(key, "is required but missing");

    public int? OptionalPositiveInt(string key)
    {
        var value = OptionalInt(key);
        if (value is <= 0) throw Bad(key, $"must be a positive integer, found {value}");
        return value;
    }

    public int? OptionalInt(string key)
    {
        if (Node(key) is not { } node) return null;
        if (node.GetValueKind() == JsonValueKind.Number && node.AsValue().TryGetValue<long>(out var value))
        {
            return value is >= int.MinValue and <= int.MaxValue
                ? (int)value
                : throw Bad(key, $"is out of range ({value})");
        }
        throw Bad(key, $"must be an integer, found {Show(node)}");
    }

    /// <summary>An integer or a non-empty list of integers (eos_token_id in LLaMA-3 configs).</summary>
    public IReadOnlyList<int> OptionalIntList(string key)
    {
        if (Node(key) is not { } node) return [];
        if (node is not JsonArray array) return [OptionalInt(key)!.Value];
        var values = new List<int>();
        for (var i = 0; i < array.Count; i++)
        {
            if (array[i] is { } item && item.GetValueKind() == JsonValueKind.Number && item.AsValue().TryGetValue<int>(out var value))
                values.Add(value);
            else
                throw Bad($"{key}[{i}]", $"must be an integer, found {Show(array[i])}");
        }
        return values;
    }

    /// <summary>A list of strings, each one of <paramref name="allowed"/>.</summary>
    public IReadOnlyList<string>? OptionalStringList(string key, IReadOnlyCollection<string> allowed)
    {
        if (Node(key) is not { } node) return null;
        if (node is not JsonArray array) throw Bad(key, $"must be a list of strings, found {Show(node)}");
        var values = new List<string>();
        for (var i = 0; i < array.Count; i++)
        {
            if (array[i] is not { } item || item.GetValueKind() != JsonValueKind.String || !allowed.Contains(item.GetValue<string>()))
                throw Bad($"{key}[{i}]", $"must be one of {string.Join(", ", allowed.Select(a => $"\"{a}\""))}, found {Show(array[i])}");
            values.Add(item.GetValue<string>());
        }
        return values;
    }

    public double? OptionalPositiveDouble(string key)
    {
        if (Node(key) is not { } node) return null;
        if (node.GetValueKind() == JsonValueKind.Number && node.AsValue().TryGetValue<double>(out var value) && double.IsFinite(value))
            return value > 0 ? value : throw Bad(key, $"must be positive, found {value.ToString(CultureInfo.InvariantCulture)}");
        throw Bad(key, $"must be a number, found {Show(node)}");
    }

    public bool? OptionalBool(string key)
    {
        if (Node(key) is not { } node) return null;
        return node.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(key, $"must be true or false, found {Show(node)}"),
        };
    }

    public string? OptionalString(string key)
    {
        if (Node(key) is not { } node) return null;
        return node.GetValueKind() == JsonValueKind.String ? node.GetValue<string>() : throw Bad(key, $"must be a string, found {Show(node)}");
    }

    public ConfigJson? OptionalObject(string key)
    {
        if (Node(key) is not { } node) return null;
        return node is JsonObject child ? new ConfigJson(child, Source, _prefix + key + ".") : throw Bad(key, $"must be an object, found {Show(node)}");
    }

    public LrkException Bad(string key, string problem) => new(ErrorCodes.BadConfig, $"{Source}: '{_prefix}{key}' {problem}");

    private JsonNode? Node(string key) => _json.TryGetPropertyValue(key, out var node) ? node : null;

    private static string Show(JsonNode? node)
    {
        if (node is null) return "null";
        var text = node.ToJsonString();
        return text.Length <= 40 ? text : text[..40] + "…";
    }
}
