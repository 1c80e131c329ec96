using System.Text.Json;

namespace LowRank.Data;

/// <summary>
/// JSON Lines: one JSON document per non-blank line (<c>\n</c>-separated; a trailing <c>\r</c> is white space to the
/// parser). Line numbers are 1-based and count the blank lines too, so an error names the line an editor shows.
/// </summary>
public static class JsonLineRecords
{
    /// <summary>
    /// Each non-blank line of <paramref name="text"/> parsed, with its line number. The element lives until the loop
    /// moves on (its document is disposed then). A line that is not JSON throws what <paramref name="notJson"/> makes
    /// of its line number and the parser's error.
    /// </summary>
    public static IEnumerable<(int LineNumber, JsonElement Record)> Parse(string text, Func<int, JsonException, Exception> notJson)
    {
        var lineNumber = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw notJson(lineNumber, e);
            }
            using (document)
            {
                yield return (lineNumber, document.RootElement);
            }
        }
    }
}
