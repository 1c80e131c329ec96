using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank.Compression;

/// <summary>
/// <c>--set Name=Value</c> for any <see cref="CompressionOptions"/> knob (e.g. <c>AdaSvdIterations=3</c>,
/// <c>Propagation=Compressed</c>, <c>LcSvdSearchOffsets=[-0.1,0,0.1]</c>), so every knob is reachable from the command
/// line and MSBuild without a flag per knob. Names are case-insensitive; values are JSON, or bare enum names.
/// </summary>
public static class CompressionOptionsText
{
    public static CompressionOptions Apply(CompressionOptions options, IEnumerable<string> assignments)
    {
        var node = JsonSerializer.SerializeToNode(options, CompressionJson.JsonOptions)!.AsObject();
        foreach (var assignment in assignments)
        {
            var equals = assignment.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0) throw new LrkException(ErrorCodes.BadArgument, $"--set '{assignment}' is not Name=Value");
            var name = assignment[..equals].Trim();
            var text = assignment[(equals + 1)..].Trim();
            var key = node.Select(p => p.Key).FirstOrDefault(k => string.Equals(k, name, StringComparison.OrdinalIgnoreCase))
                ?? throw new LrkException(ErrorCodes.UnknownConfigKey,
                    $"unknown compression option '{name}'; options: {string.Join(", ", node.Select(p => char.ToUpperInvariant(p.Key[0]) + p.Key[1..]))}");
            if (key is "method" or "ratio" or "bits" or "targetBits") throw new LrkException(ErrorCodes.BadArgument, $"set {key} with --{(key == "targetBits" ? "target-bits" : key)}, not --set");
            JsonNode? value;
            try
            {
                value = JsonNode.Parse(text);
            }
            catch (JsonException)
            {
                value = JsonValue.Create(text);
            }
            node[key] = value;
        }
        try
        {
            return node.Deserialize<CompressionOptions>(CompressionJson.JsonOptions)
                ?? throw new LrkException(ErrorCodes.BadConfigValue, "the compression options are empty");
        }
        catch (JsonException e)
        {
            throw new LrkException(ErrorCodes.BadConfigValue, $"bad compression option value: {e.Message}");
        }
    }
}
