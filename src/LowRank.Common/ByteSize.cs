using System.Globalization;
using System.Text.RegularExpressions;

namespace LowRank;

/// <summary>Sizes as people write them: <c>20GB</c>, <c>500 MB</c>, <c>1.5GB</c>, <c>4096</c> (bytes); units are powers of 1024.</summary>
public static partial class ByteSize
{
    /// <param name="name">What the size is for (an option or property name), for the error message.</param>
    public static long Parse(string text, string name, string code)
    {
        var m = SizePattern().Match(text.Trim());
        if (!m.Success) throw new LrkException(code, $"{name} '{text}': use a number and B, KB, MB, GB or TB (20GB)");
        var n = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        var unit = m.Groups[2].Value.ToUpperInvariant() switch { "KB" => 1L << 10, "MB" => 1L << 20, "GB" => 1L << 30, "TB" => 1L << 40, _ => 1L };
        return (long)(n * unit);
    }

    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F1} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):F1} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes} B"),
    };

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)?$", RegexOptions.IgnoreCase)]
    private static partial Regex SizePattern();
}
