using System.Globalization;
using System.Text.Json.Nodes;
using LowRank.Cache;

namespace LowRank.Compression;

/// <summary>
/// One compression as a build asks for it, parsed once at the edge (the MSBuild item) into typed values:
/// <see cref="ToArguments"/> renders the tool's command line, <see cref="KeyFields"/> the cache key's fields. The
/// names, spellings and ranges come from <see cref="CompressionMethods"/>, <see cref="CompressionRatio"/>,
/// <see cref="CalibrationNumbers"/> and <see cref="FactorDtypeNames"/>, which <c>compress</c> parses its options with too. Unset values mean the tool's
/// defaults (<see cref="CompressionDefaults"/>), pinned by the tool version in the key.
/// </summary>
public sealed record CompressionRequest
{
    public required CompressionMethod Method { get; init; }

    /// <summary>Fraction of the block linears' parameters to remove (<see cref="CompressionRatio"/>); rtn/gptq ignore it.</summary>
    public required double Ratio { get; init; }

    public int? Samples { get; init; }
    public int? SeqLen { get; init; }
    /// <summary>The calibration seed (<see cref="CalibrationNumbers"/>: 0 to 2147483647, like <c>--seed</c>).</summary>
    public int? Seed { get; init; }

    /// <summary>The canonical spelling (<see cref="FactorDtypeNames"/>), or null for the source model's dtype.</summary>
    public string? FactorDtype { get; init; }

    /// <summary>Further tool arguments, verbatim and in order (method-specific options); part of the key.</summary>
    public IReadOnlyList<string> ToolArguments { get; init; } = [];

    public ModelFormats Formats { get; init; } = ModelFormats.Default;

    /// <summary>The calibration text as the tool reads it (a path or npm:&lt;corpus&gt;): in the key as its digest, not its path.</summary>
    public string? Calibration { get; init; }
    public long? CalibrationStart { get; init; }
    public long? CalibrationEnd { get; init; }

    /// <summary>Where to compute (<see cref="DeviceNames"/>), or null for the tool's default (auto): chooses hardware,
    /// not the result, so not part of the key.</summary>
    public DeviceRequest? Device { get; init; }

    /// <summary>The <c>compress</c> arguments after the model and before the output, in the tool's spelling.</summary>
    public IReadOnlyList<string> ToArguments()
    {
        var args = new List<string> { "--method", Method.Key(), "--ratio", CompressionRatio.Format(Ratio) };
        void Add(string name, string? value)
        {
            if (!string.IsNullOrWhiteSpace(value)) args.AddRange([name, value]);
        }
        if (!string.IsNullOrWhiteSpace(Calibration))
        {
            Add("--calib", Calibration);
            Add("--calib-start", Number(CalibrationStart));
            Add("--calib-end", Number(CalibrationEnd));
        }
        Add("--samples", Number(Samples));
        Add("--seq-len", Number(SeqLen));
        Add("--seed", Number(Seed));
        Add("--device", Device?.Name());
        Add("--factor-dtype", FactorDtype);
        if (Formats != ModelFormats.Default) Add("--format", Formats.Canonical);
        args.AddRange(ToolArguments);
        return args;
    }

    /// <summary>The cache key's fields (see <see cref="CacheKey"/>): this request plus what it was resolved against.</summary>
    /// <param name="sourceDigest">A <see cref="ModelDigest"/> of the source model.</param>
    /// <param name="calibrationKey">The calibration text's digest (with its byte range), or null without calibration.</param>
    /// <param name="toolVersion">The compressor's informational version.</param>
    public JsonObject KeyFields(string sourceDigest, string? calibrationKey, string toolVersion)
    {
        var fields = new JsonObject
        {
            ["format"] = CacheKey.Format,
            ["method"] = Method.Key(),
            ["ratio"] = Ratio,
            ["source"] = sourceDigest,
            ["calibration"] = calibrationKey,
            ["samples"] = Samples,
            ["seqLen"] = SeqLen,
            ["seed"] = Seed,
            ["factorDtype"] = FactorDtype ?? "",
            ["tool"] = toolVersion,
            ["args"] = new JsonArray(ToolArguments.Select(a => (JsonNode?)JsonValue.Create(a)).ToArray()),
        };
        // Artifact-only entries were made before formats existed: their keys have no formats field.
        if (Formats != ModelFormats.Default) fields["formats"] = Formats.Canonical;
        return fields;
    }

    /// <summary>The cache key of this request (<see cref="KeyFields"/>).</summary>
    public CacheKey Key(string sourceDigest, string? calibrationKey, string toolVersion) =>
        CacheKey.FromFields(KeyFields(sourceDigest, calibrationKey, toolVersion));

    private static string? Number(long? value) => value?.ToString(CultureInfo.InvariantCulture);
}
