using System.Text.Json;

namespace LowRank.IO;

/// <summary>
/// Every property name and string value of a JSON document decoded once, up front: an escaped lone surrogate
/// (<c>"\ud800"</c>) is valid JSON, but System.Text.Json throws an InvalidOperationException whenever such a string is
/// read, so a file holding one would otherwise crash whatever code first touches that key. Here it is an error with
/// the caller's code and the key path.
/// </summary>
public static class JsonTextCheck
{
    public static void Check(JsonElement element, string source, string code) => Walk(element, "", source, code);

    /// <summary>Parses <paramref name="json"/> just to check it (for callers that parse into JsonNode).</summary>
    public static void Check(string json, string source, string code, int maxDepth = 64)
    {
        using var document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = maxDepth });
        Walk(document.RootElement, "", source, code);
    }

    private static void Walk(JsonElement element, string path, string source, string code)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    var name = Decode(() => property.Name, path.Length == 0 ? "a key at the top level" : $"a key under '{path}'", source, code);
                    Walk(property.Value, path.Length == 0 ? name : path + "." + name, source, code);
                }
                break;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray()) Walk(item, $"{path}[{index++}]", source, code);
                break;
            case JsonValueKind.String:
                Decode(() => element.GetString()!, $"the value of '{path}'", source, code);
                break;
            default:
                break;
        }
    }

    private static string Decode(Func<string> read, string what, string source, string code)
    {
        string text;
        try
        {
            text = read();
        }
        catch (InvalidOperationException)
        {
            throw new LrkException(code, $"{source}: {what} is not text (it holds a lone UTF-16 surrogate escape such as \\ud800, or bytes that are not UTF-8)");
        }
        return StrictUtf8.IsWellFormed(text) ? text : throw new LrkException(code, $"{source}: {what} is not well-formed text");
    }
}
