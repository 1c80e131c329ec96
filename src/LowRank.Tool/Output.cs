using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LowRank.Tool;

public static class Output
{
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
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
