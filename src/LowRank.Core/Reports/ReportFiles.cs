using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using LowRank.Compression;

namespace LowRank.Reports;

/// <summary>Report files are written to a temporary name beside the target and renamed into place, so a crash or
/// Ctrl+C never leaves a half-written report that looks complete.</summary>
public static class ReportFiles
{
    /// <summary><see cref="CompressionJson.JsonOptions"/>, with enums written as camelCase names.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new(CompressionJson.JsonOptions)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public static string ToJson<T>(T value) => JsonSerializer.Serialize(value, JsonOptions);

    public static void WriteJson<T>(string path, T value) => WriteText(path, ToJson(value) + "\n");

    public static void WriteText(string path, string text) => WriteAtomically(path, temp => File.WriteAllText(temp, text, new UTF8Encoding(false)));

    /// <summary>Runs <paramref name="write"/> on a temporary path in the target's folder, then renames it to <paramref name="path"/>.</summary>
    public static void WriteAtomically(string path, Action<string> write)
    {
        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full)!;
        var temp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(folder);
            write(temp);
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(ErrorCodes.ReportUnwritable, $"cannot write report file '{full}': {e.Message}", e);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
