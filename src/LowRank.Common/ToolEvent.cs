using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank;

/// <summary>
/// One line of <c>dotnet lowrank … --progress jsonl</c> on stdout: the protocol between the tool and whoever runs it
/// out of process (the MSBuild task, CI scripts). Every line is one JSON object with a <c>type</c>:
/// <list type="bullet">
/// <item><c>{"type":"progress","stage":"calibrate","block":3,"blocks":32,"message":"…"}</c> (block/blocks optional)</item>
/// <item><c>{"type":"warning","code":"LRK4002","message":"…"}</c></item>
/// <item><c>{"type":"error","code":"LRK2001","message":"…"}</c> (also printed on stderr as <c>error LRK2001: …</c>)</item>
/// <item><c>{"type":"result", …}</c>: the command's JSON result, last line of a successful run.</item>
/// </list>
/// Lines that are not JSON objects are ordinary text (a consumer logs them as messages).
/// </summary>
public sealed record ToolEvent(string Type, string? Stage = null, int? Block = null, int? Blocks = null, string? Code = null, string? Message = null)
{
    public const string Progress = "progress";
    public const string Warning = "warning";
    public const string Error = "error";
    public const string Result = "result";

    /// <summary>For <see cref="Result"/> lines: the whole object.</summary>
    public JsonObject? Payload { get; init; }

    public string ToJsonLine()
    {
        var obj = Payload is null ? new JsonObject() : (JsonObject)Payload.DeepClone();
        obj["type"] = Type;
        if (Stage is not null) obj["stage"] = Stage;
        if (Block is not null) obj["block"] = Block;
        if (Blocks is not null) obj["blocks"] = Blocks;
        if (Code is not null) obj["code"] = Code;
        if (Message is not null) obj["message"] = Message;
        return obj.ToJsonString(new JsonSerializerOptions { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    /// <summary>The event on <paramref name="line"/>, or null when the line is not a tool event (plain text).</summary>
    public static ToolEvent? TryParse(string line)
    {
        var trimmed = line.Trim();
        if (trimmed.Length < 2 || trimmed[0] != '{') return null;
        try
        {
            if (JsonNode.Parse(trimmed) is not JsonObject obj || obj["type"] is not JsonValue typeValue || !typeValue.TryGetValue<string>(out var type)) return null;
            return new ToolEvent(type, Text(obj, "stage"), Int(obj, "block"), Int(obj, "blocks"), Text(obj, "code"), Text(obj, "message"))
            {
                Payload = obj,
            };
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string? Text(JsonObject obj, string name) =>
        obj[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : obj[name]?.ToJsonString();

    private static int? Int(JsonObject obj, string name) =>
        obj[name] is JsonValue v && v.TryGetValue<int>(out var i) ? i : null;
}
