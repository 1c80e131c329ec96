using System.Globalization;
using System.Text.Json.Nodes;
using LowRank.Compression;

namespace LowRank.Cache;

/// <summary>
/// Everything that determines the bytes of a compressed model, and nothing else: the method and its knobs, the
/// content digests of the source model and of the calibration text actually fed to the compressor, the factor
/// dtype and the tool version. No paths, no machine names, no device (a CPU and a GPU run of the same tool
/// version are one entry), so a key computed on one machine finds the entry another machine made.
/// <see cref="Hash"/> is the SHA-256 of <see cref="CanonicalText"/>; it names the cache entry.
/// </summary>
public sealed class CacheKey
{
    /// <summary>Bumped when the meaning of a field changes, so old entries are never mistaken for new ones.</summary>
    public const int Format = 1;

    private CacheKey(JsonObject fields)
    {
        Fields = fields;
        CanonicalText = CanonicalJson.Serialize(fields);
        Hash = CanonicalJson.Sha256Hex(CanonicalText);
    }

    public JsonObject Fields { get; }
    public string CanonicalText { get; }
    public string Hash { get; }

    /// <summary>A key from positional values; <paramref name="method"/> and <paramref name="factorDtype"/> are parsed with
    /// the one table (<see cref="CompressionMethods"/>, <see cref="FactorDtypeNames"/>), so every spelling of one
    /// request is one key. <see cref="CompressionRequest.Key"/> is the usual way in.</summary>
    /// <param name="method">Compression method, any spelling <see cref="CompressionMethods.Parse"/> accepts.</param>
    /// <param name="ratio">Fraction of parameters removed, in (0, 1).</param>
    /// <param name="sourceDigest">A <see cref="ModelDigest"/> of the source model.</param>
    /// <param name="calibrationDigest">SHA-256 of the calibration text fed to the tool, or null when the method takes none.</param>
    /// <param name="samples">Calibration samples, or null for the tool's default (the tool version then pins it).</param>
    /// <param name="seqLen">Calibration sequence length, or null for the tool's default.</param>
    /// <param name="seed">Seed, or null for the tool's default.</param>
    /// <param name="factorDtype">dtype of the stored factors (any spelling), or empty for the tool's default.</param>
    /// <param name="toolVersion">The compressor's informational version (commit included).</param>
    /// <param name="extraArguments">Further tool arguments, verbatim and in order (method-specific options).</param>
    /// <param name="formats">What the entry holds (<see cref="ModelFormats"/>); null is the artifact alone. Any other
    /// value adds a <c>formats</c> field, so the keys of artifact-only entries, made before formats existed, still match.</param>
    public static CacheKey Create(
        string method, double ratio, string sourceDigest, string? calibrationDigest,
        int? samples, int? seqLen, long? seed, string? factorDtype, string toolVersion,
        IReadOnlyList<string>? extraArguments = null, ModelFormats? formats = null) =>
        new CompressionRequest
        {
            Method = CompressionMethods.Parse(method),
            Ratio = ratio,
            Samples = samples,
            SeqLen = seqLen,
            Seed = seed is { } value ? CalibrationNumbers.CheckSeed(value, "seed", ErrorCodes.BadArgument) : null,
            FactorDtype = string.IsNullOrWhiteSpace(factorDtype) ? null : FactorDtypeNames.Canonical(factorDtype, "FactorDtype", ErrorCodes.BadArgument),
            ToolArguments = extraArguments ?? [],
            Formats = formats ?? ModelFormats.Default,
        }.Key(sourceDigest, calibrationDigest, toolVersion);

    /// <summary>A key from its fields (<see cref="CompressionRequest.KeyFields"/>).</summary>
    public static CacheKey FromFields(JsonObject fields) => new(fields);

    /// <summary>Re-reads a key from its canonical text (e.g. an entry record); the hash is recomputed, never trusted.</summary>
    public static CacheKey Parse(string canonicalText)
    {
        var node = JsonNode.Parse(canonicalText) as JsonObject
            ?? throw new LrkException(ErrorCodes.CacheCorrupt, "a cache key must be a JSON object");
        return new CacheKey(node);
    }

    public string? GetString(string field) => Fields[field]?.GetValueKind() == System.Text.Json.JsonValueKind.String ? Fields[field]!.GetValue<string>() : Fields[field]?.ToJsonString();

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Hash[..12]} {CanonicalText}");
}
