using System.Globalization;

namespace LowRank.Compression;

/// <summary>
/// The ranges of a compression request's calibration numbers and their one parser: <c>Samples</c> (N) and <c>SeqLen</c>
/// (L) are whole numbers of at least 1; <c>Seed</c> is a whole number from 0 to 2147483647 (the sampler's and AdaSVD's
/// random generators take a non-negative 32-bit seed; a negative one would draw what its absolute value draws, under
/// another cache key). The MSBuild item (<see cref="ErrorCodes.BadItem"/>), <c>compress</c>'s options
/// (<see cref="ErrorCodes.BadArgument"/>) and the cache key all use these, so a value one edge accepts the others accept.
/// Written with digits in every culture.
/// </summary>
public static class CalibrationNumbers
{
    public const int MinSeed = 0;
    public const int MaxSeed = int.MaxValue;

    /// <summary>Samples or SeqLen: a whole number ≥ 1, or <paramref name="code"/> naming <paramref name="name"/>.</summary>
    public static int ParseCount(string? text, string name, string code) => TryParse(text, 1, out var value)
        ? value
        : throw new LrkException(code, $"{name}='{text}' must be a whole number > 0");

    /// <summary>A seed from <see cref="MinSeed"/> to <see cref="MaxSeed"/>, or <paramref name="code"/> naming <paramref name="name"/>.</summary>
    public static int ParseSeed(string? text, string name, string code) => TryParse(text, MinSeed, out var value)
        ? value
        : throw new LrkException(code, SeedMessage(name, text));

    /// <summary><paramref name="seed"/> as the 32-bit seed it is, or <paramref name="code"/> when it is out of range.</summary>
    public static int CheckSeed(long seed, string name, string code) => seed is >= MinSeed and <= MaxSeed
        ? (int)seed
        : throw new LrkException(code, SeedMessage(name, seed.ToString(CultureInfo.InvariantCulture)));

    private static bool TryParse(string? text, int min, out int value) =>
        int.TryParse((text ?? "").Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out value) && value >= min;

    private static string SeedMessage(string name, string? text) =>
        $"{name}='{text}' must be a whole number from {MinSeed} to {MaxSeed.ToString(CultureInfo.InvariantCulture)}";
}
