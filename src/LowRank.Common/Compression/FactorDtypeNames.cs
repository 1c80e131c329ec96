using System.Globalization;
using System.Text.RegularExpressions;

namespace LowRank.Compression;

/// <summary>
/// The spellings of <c>--factor-dtype</c> and the MSBuild <c>FactorDtype</c> metadata, each with one canonical
/// spelling: <c>fp32</c>, <c>fp16</c>, <c>bf16</c> (also float32/f32/float, float16/f16/half, bfloat16), or a quantized
/// format <c>int8</c>, <c>int4[-g32|-g64|-g128][-zp]</c>, <c>int3[…]</c> (canonical: lower case). The cache key holds
/// the canonical spelling, so <c>half</c> and <c>fp16</c> are one entry. <see cref="FactorStorage"/> is the parsed value.
/// </summary>
public static partial class FactorDtypeNames
{
    /// <summary>The canonical float spellings.</summary>
    public static readonly IReadOnlyList<string> Float = ["fp32", "fp16", "bf16"];

    /// <summary>The quantized spellings, for help and error messages.</summary>
    public const string QuantizedSpellings = "int8, int4 or int3, optionally with -g32|-g64|-g128 (group size, default 128) and -zp (zero points)";

    /// <summary>The group sizes a quantized spelling may name.</summary>
    public static readonly IReadOnlyList<int> GroupSizes = [32, 64, 128];

    /// <summary>The canonical spelling of <paramref name="text"/> (<see cref="FactorStorage.Canonical"/>), or false when it is no factor dtype.</summary>
    public static bool TryCanonical(string? text, out string canonical)
    {
        var known = FactorStorage.TryParse(text, out var storage);
        canonical = known ? storage.Canonical : "";
        return known;
    }

    /// <summary>The canonical spelling, or <paramref name="code"/> naming <paramref name="name"/> and the valid spellings.</summary>
    public static string Canonical(string? text, string name, string code) => FactorStorage.Parse(text, name, code).Canonical;

    /// <summary>The canonical float spelling of a trimmed, lower-case spelling, or null when it names no float dtype.</summary>
    internal static string? CanonicalFloat(string folded) => folded switch
    {
        "fp32" or "float32" or "f32" or "float" => "fp32",
        "fp16" or "float16" or "f16" or "half" => "fp16",
        "bf16" or "bfloat16" => "bf16",
        _ => null,
    };

    /// <summary>The quantized grammar: bits 8, 4 or 3; a group size (32, 64, 128; not for int8); zero points (not for int8).</summary>
    public static bool TryParseQuantized(string? text, out int bits, out int? groupSize, out bool zeroPoints)
    {
        bits = 0;
        groupSize = null;
        zeroPoints = false;
        var match = QuantizedGrammar().Match((text ?? "").Trim().ToLowerInvariant());
        if (!match.Success) return false;
        bits = int.Parse(match.Groups["bits"].Value, CultureInfo.InvariantCulture);
        groupSize = match.Groups["group"].Success ? int.Parse(match.Groups["group"].Value, CultureInfo.InvariantCulture) : null;
        zeroPoints = match.Groups["zp"].Success;
        if (bits == 8 && (groupSize is not null || zeroPoints)) return false;
        return bits == 8 || groupSize is not { } g || GroupSizes.Contains(g);
    }

    [GeneratedRegex(@"^int(?<bits>[348])(-g(?<group>[0-9]+))?(?<zp>-zp)?$")]
    private static partial Regex QuantizedGrammar();
}
