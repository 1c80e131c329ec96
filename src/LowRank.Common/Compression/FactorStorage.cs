namespace LowRank.Compression;

/// <summary>
/// How a compression stores its factors, parsed once from any spelling <see cref="FactorDtypeNames"/> accepts: a float
/// dtype (<c>fp32</c>, <c>fp16</c>, <c>bf16</c>) or a quantized format (<c>int8</c>, <c>int4[-gN][-zp]</c>,
/// <c>int3[…]</c>). <see cref="Canonical"/> is what the cache key and the tool's command line carry; the engine turns a
/// quantized storage into its format with the run's group size and zero-point defaults for what the spelling leaves out.
/// </summary>
public readonly record struct FactorStorage
{
    private FactorStorage(string canonical, int? bits, int? groupSize, bool zeroPoints)
    {
        Canonical = canonical;
        Bits = bits;
        GroupSize = groupSize;
        ZeroPoints = zeroPoints;
    }

    /// <summary>The canonical spelling: fp32, fp16, bf16, or the quantized spelling in lower case.</summary>
    public string Canonical { get; }

    /// <summary>Bits per stored weight of a quantized storage (8, 4 or 3); null for a float dtype.</summary>
    public int? Bits { get; }

    /// <summary>The group size the spelling names (<c>-g64</c>); null when it names none (the run's group size applies).</summary>
    public int? GroupSize { get; }

    /// <summary>True when the spelling says <c>-zp</c>.</summary>
    public bool ZeroPoints { get; }

    public bool IsQuantized => Bits is not null;

    public override string ToString() => Canonical;

    /// <summary>Parses a spelling (any case, surrounding blanks ignored), or returns false.</summary>
    public static bool TryParse(string? text, out FactorStorage storage)
    {
        var folded = (text ?? "").Trim().ToLowerInvariant();
        if (FactorDtypeNames.CanonicalFloat(folded) is { } name)
        {
            storage = new FactorStorage(name, null, null, false);
            return true;
        }
        if (FactorDtypeNames.TryParseQuantized(folded, out var bits, out var groupSize, out var zeroPoints))
        {
            storage = new FactorStorage(folded, bits, groupSize, zeroPoints);
            return true;
        }
        storage = default;
        return false;
    }

    /// <summary>Parses a spelling, or fails with <paramref name="code"/> naming <paramref name="name"/> (e.g. <c>FactorDtype</c>
    /// with <see cref="ErrorCodes.BadItem"/>, <c>--factor-dtype</c> with <see cref="ErrorCodes.BadArgument"/>) and the valid spellings.</summary>
    public static FactorStorage Parse(string? text, string name, string code) => TryParse(text, out var storage)
        ? storage
        : throw new LrkException(code, $"unknown factor dtype {name}='{text}': use {string.Join(", ", FactorDtypeNames.Float)} or {FactorDtypeNames.QuantizedSpellings}");
}
