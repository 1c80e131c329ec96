using System.Text.Json.Nodes;
using LowRank.Quantization;

namespace LowRank.Artifacts;

/// <summary>One quantized linear: its format and its shape [out, in] (a reader needs the column count: the last group of
/// a row is padded).</summary>
public sealed record QuantizedLinear(QuantFormat Format, long OutFeatures, long InFeatures);

/// <summary>
/// The <c>quantization</c> object of an artifact's <c>lowrank</c> section (format version 2): which linears are stored as
/// integers, in which <see cref="QuantFormat"/>, and by which quantizer. A listed linear stores, in place of its
/// weight, <c>&lt;linear&gt;.qweight</c>/<c>.scales</c>/<c>.qzeros</c> when it is dense (the rtn/gptq baselines), or
/// <c>&lt;linear&gt;.lowrank_A.qweight</c>/<c>.scales</c>/<c>.qzeros</c> and the same for <c>lowrank_B</c> when it is
/// factorised; the layout is <see cref="QuantizedMatrix"/>'s (README, "Quantized tensors").
/// </summary>
public sealed record ArtifactQuantization
{
    /// <summary>"gptq" or "rtn" (<see cref="Quantization.Quantizer"/>).</summary>
    public required Quantizer Quantizer { get; init; }

    /// <summary>Linear name → the format of its stored matrices (a factorised linear's A and B share it) and its shape.</summary>
    public required IReadOnlyDictionary<string, QuantizedLinear> Linears { get; init; }

    public const string ScaleDtype = "float16";

    /// <summary>One line a reader can act on (repeated in the JSON for people reading config.json).</summary>
    public const string Layout = "codes along each row's input dimension: int8 = int8 [rows, cols] with fp16 scales [rows]; "
        + "intB-gG = uint8 [rows, ceil(cols/G), G*B/8] (codes packed low bits first) with fp16 scales [rows, ceil(cols/G)] and, "
        + "with -zp, uint8 zero points [rows, ceil(ceil(cols/G)*B/8)] (else 2^(B-1)); value = (code - zero) * scale";

    /// <summary>The common format when every linear has the same one, else null.</summary>
    public QuantFormat? Common => Linears.Values.Select(l => l.Format).Distinct().Count() == 1 ? Linears.Values.First().Format : null;

    public JsonObject ToJson()
    {
        var linears = new JsonObject();
        foreach (var (name, linear) in Linears.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            linears[name] = new JsonObject
            {
                ["format"] = linear.Format.ToString(),
                ["out_features"] = linear.OutFeatures,
                ["in_features"] = linear.InFeatures,
            };
        }
        return new JsonObject
        {
            ["quantizer"] = Quantizer.ToString().ToLowerInvariant(),
            ["format"] = Common?.ToString() ?? "mixed",
            ["scale_dtype"] = ScaleDtype,
            ["layout"] = Layout,
            ["linears"] = linears,
        };
    }

    public static ArtifactQuantization FromJson(JsonObject json, string source)
    {
        LrkException Bad(string key, string problem) => new(ErrorCodes.BadArtifact, $"{source}: lowrank.quantization.{key} {problem}");
        var quantizerName = json["quantizer"] is JsonValue q && q.TryGetValue<string>(out var text) ? text : null;
        if (!Enum.TryParse<Quantizer>(quantizerName, ignoreCase: true, out var quantizer)) throw Bad("quantizer", $"must be gptq or rtn, found {json["quantizer"]?.ToJsonString() ?? "nothing"}");
        if (json["scale_dtype"] is JsonValue scale && scale.TryGetValue<string>(out var scaleDtype) && scaleDtype != ScaleDtype)
            throw Bad("scale_dtype", $"is '{scaleDtype}'; this tool reads {ScaleDtype} scales");
        if (json["linears"] is not JsonObject linearsJson) throw Bad("linears", "must be an object of linear name → format");
        var linears = new SortedDictionary<string, QuantizedLinear>(StringComparer.Ordinal);
        foreach (var (name, node) in linearsJson)
        {
            if (node?["format"] is not JsonValue v || !v.TryGetValue<string>(out var spelling) || !QuantFormat.TryParse(spelling, out var format))
                throw Bad($"linears.{name}.format", $"must be a format such as int8 or int4-g128, found {node?["format"]?.ToJsonString() ?? "nothing"}");
            long Size(string key) => node[key] is JsonValue n && n.TryGetValue<long>(out var value) && value > 0
                ? value : throw Bad($"linears.{name}.{key}", "must be a positive integer");
            linears[name] = new QuantizedLinear(format, Size("out_features"), Size("in_features"));
        }
        return new ArtifactQuantization { Quantizer = quantizer, Linears = linears };
    }

    /// <summary>The quantized linears recorded in a model's config.json (its <c>lowrank</c> section), or none.</summary>
    public static IReadOnlyDictionary<string, QuantizedLinear> Of(JsonObject? config, string source) =>
        config?[ArtifactFormat.LowRankSectionName]?["quantization"] is JsonObject json
            ? FromJson(json, source).Linears
            : new Dictionary<string, QuantizedLinear>();
}
