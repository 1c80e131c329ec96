using System.Globalization;

namespace LowRank.Compression;

/// <summary>
/// The ratio rule (../shared/docs/methods.md): the compression ratio is the fraction of the block linears'
/// parameters REMOVED, strictly between 0 and 1; written with a dot in every culture. The one parser and the one
/// check: the MSBuild <c>Ratio</c> metadata, <c>--ratio</c> and the engine's options all use them.
/// </summary>
public static class CompressionRatio
{
    public static bool IsValid(double ratio) => ratio > 0 && ratio < 1;

    /// <summary>Returns <paramref name="ratio"/>, or throws <see cref="ErrorCodes.BadRatio"/> unless 0 &lt; ratio &lt; 1.</summary>
    public static double Validate(double ratio) => IsValid(ratio)
        ? ratio
        : throw new LrkException(ErrorCodes.BadRatio,
            $"compression ratio {ratio.ToString(CultureInfo.InvariantCulture)} is outside (0, 1): it is the fraction of the linears' parameters to REMOVE (0.2 keeps 80%)");

    /// <summary>Parses a ratio written with a dot (invariant culture) and checks the rule, or throws <see cref="ErrorCodes.BadRatio"/>
    /// naming <paramref name="name"/> (e.g. <c>Ratio</c> or <c>--ratio</c>).</summary>
    public static double Parse(string? text, string name) => TryParse(text, out var ratio)
        ? ratio
        : throw new LrkException(ErrorCodes.BadRatio,
            $"{name}='{text}' must be the fraction of parameters to remove, a number between 0 and 1 written with a dot (e.g. 0.4)");

    public static bool TryParse(string? text, out double ratio) =>
        double.TryParse((text ?? "").Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out ratio) && IsValid(ratio);

    /// <summary>The spelling a ratio is passed on with: round-trip, invariant.</summary>
    public static string Format(double ratio) => ratio.ToString("R", CultureInfo.InvariantCulture);
}
