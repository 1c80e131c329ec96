using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LowRank.Compression;

namespace LowRank.Tool;

public static class Output
{
    /// <summary>The style of every JSON file LowRank writes (<see cref="CompressionJson.JsonOptions"/>): camelCase, indented,
    /// NaN and infinities as names, non-ASCII kept readable; every property written, nulls included.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new(CompressionJson.JsonOptions)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>The running command's path below the root ("compress", "cache list"); set by <see cref="CommandRunner"/>.</summary>
    public static string CommandPath { get; set; } = "";

    /// <summary>The schema id of a command's <c>--json</c> output: <c>lowrank.&lt;command&gt;/v1</c>, words joined by dots
    /// (<c>lowrank.cache.list/v1</c>), as eval's <c>lowrank.eval/v1</c>. A breaking change to an output bumps its version.</summary>
    public static string SchemaId(string commandPath) =>
        "lowrank." + (commandPath.Length == 0 ? "tool" : commandPath.Replace(' ', '.')) + "/v1";

    /// <summary>Every <c>--json</c> document goes out through here: an object gets <c>"schema"</c> first (unless it states
    /// its own), anything else is wrapped as <c>{"schema": …, "value": …}</c>.</summary>
    public static void WriteJson<T>(T value) => Console.WriteLine(WithSchema(value, CommandPath).ToJsonString(JsonOptions));

    public static JsonObject WithSchema<T>(T value, string commandPath)
    {
        var node = JsonSerializer.SerializeToNode(value, JsonOptions);
        if (node is JsonObject document && document.ContainsKey("schema")) return document;
        var result = new JsonObject { ["schema"] = SchemaId(commandPath) };
        if (node is JsonObject fields)
            foreach (var (key, field) in fields.ToList())
            {
                fields.Remove(key);
                result[key] = field;
            }
        else result["value"] = node;
        return result;
    }
}
