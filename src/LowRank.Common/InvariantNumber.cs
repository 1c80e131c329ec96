using System.Globalization;

namespace LowRank;

/// <summary>
/// Numbers as a command line, a config file or MSBuild metadata writes them, read the same under every culture:
/// an optional sign, digits with '.' as the decimal point, an optional exponent — no thousands separators, no
/// culture's decimal comma. <c>"0,4"</c> is rejected (the default .NET parse reads it as 4 under the invariant culture,
/// or 0.4 under de-DE), and so are NaN and ±Infinity, which no size, ratio or rate can be.
/// </summary>
public static class InvariantNumber
{
    public static bool TryParse(string? text, out double value) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);
}
