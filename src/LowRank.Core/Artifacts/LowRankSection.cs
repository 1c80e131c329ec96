using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank.Artifacts;

/// <summary>Parameter counts behind the achieved ratios (elements of stored weight tensors; biases count as kept).</summary>
public sealed record ParameterCounts(long CompressedLinearsBefore, long CompressedLinearsAfter, long ModelBefore, long ModelAfter);

/// <summary>Bytes of the compressed linears' weights (biases excluded): in the source's dtype before, as stored after
/// (factors, quantized codes with their scales and zero points, linears kept dense), and the bits per original weight
/// that makes (8 · after / Σ out·in).</summary>
public sealed record LinearBytes(long Before, long After, double BitsPerWeight);

/// <summary>
/// The <c>lowrank</c> section of an artifact's <c>config.json</c>: what was done to the model, in a form a reader
/// can act on without the manifest. Ratios are fractions of parameters REMOVED (SVD-LLM's convention; ASVD and
/// LC-SVD quote kept fractions). <see cref="TruncationRanks"/> maps each factorised linear (checkpoint name, e.g.
/// <c>model.layers.0.self_attn.q_proj</c>) to its rank k, as ASVD's <c>truncation_ranks</c> does; linears not listed
/// are stored dense.
/// </summary>
public sealed record LowRankSection
{
    /// <summary><see cref="ArtifactFormat.PlainVersion"/>, or 2 when <see cref="Quantization"/> is set.</summary>
    public int FormatVersion { get; init; } = ArtifactFormat.PlainVersion;
    public required string Method { get; init; }
    public required double RequestedRatio { get; init; }

    /// <summary>1 − (parameters of the compressed linears after) / (before).</summary>
    public required double AchievedRatio { get; init; }

    /// <summary>1 − (all stored parameters after) / (before): embeddings, norms and head included.</summary>
    public required double AchievedRatioModel { get; init; }

    public required FactorDtype FactorDtype { get; init; }
    public required ParameterCounts Parameters { get; init; }
    public required IReadOnlyDictionary<string, int> TruncationRanks { get; init; }

    /// <summary>The linears stored as integers (format version 2); null when none is.</summary>
    public ArtifactQuantization? Quantization { get; init; }

    /// <summary>Storage of the compressed linears; null in artifacts written before it was recorded.</summary>
    public LinearBytes? LinearBytes { get; init; }

    public JsonObject ToJson()
    {
        var ranks = new JsonObject();
        foreach (var (name, rank) in TruncationRanks) ranks[name] = rank;
        var json = new JsonObject
        {
            ["format_version"] = FormatVersion,
            ["method"] = Method,
            ["ratio_definition"] = "fraction of parameters removed",
            ["requested_ratio"] = RequestedRatio,
            ["achieved_ratio"] = Math.Round(AchievedRatio, 6),
            ["achieved_ratio_model"] = Math.Round(AchievedRatioModel, 6),
            ["factor_dtype"] = FactorDtype.TorchName(),
            ["factor_layout"] = $"<linear>{ArtifactFormat.FactorASuffix} [out, k] @ <linear>{ArtifactFormat.FactorBSuffix} [k, in] = <linear>.weight [out, in]",
            ["parameters"] = new JsonObject
            {
                ["compressed_linears_before"] = Parameters.CompressedLinearsBefore,
                ["compressed_linears_after"] = Parameters.CompressedLinearsAfter,
                ["model_before"] = Parameters.ModelBefore,
                ["model_after"] = Parameters.ModelAfter,
            },
            ["truncation_ranks"] = ranks,
        };
        if (LinearBytes is { } bytes)
        {
            json["linear_bytes"] = new JsonObject
            {
                ["before"] = bytes.Before,
                ["after"] = bytes.After,
                ["bits_per_weight"] = Math.Round(bytes.BitsPerWeight, 6),
            };
        }
        if (Quantization is not null) json["quantization"] = Quantization.ToJson();
        return json;
    }

    /// <summary>Reads the section; <paramref name="source"/> names the file in errors (<see cref="ErrorCodes.BadArtifact"/>).</summary>
    public static LowRankSection FromJson(JsonObject section, string source)
    {
        LrkException Bad(string key, string problem) => new(ErrorCodes.BadArtifact, $"{source}: lowrank.{key} {problem}");

        T Required<T>(string key)
        {
            if (section[key] is not JsonValue value) throw Bad(key, "is missing");
            try
            {
                return value.GetValue<T>();
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw Bad(key, $"must be a {typeof(T).Name.ToLowerInvariant()}, found {value.ToJsonString()}");
            }
        }

        var version = Required<int>("format_version");
        if (version > ArtifactFormat.Version)
            throw Bad("format_version", $"is {version}; this tool reads artifacts up to version {ArtifactFormat.Version} (update LowRank.Tool)");
        var dtypeName = Required<string>("factor_dtype");
        if (!FactorDtypes.TryParse(dtypeName, out var dtype)) throw Bad("factor_dtype", $"'{dtypeName}' is not float32, float16 or bfloat16");
        if (section["truncation_ranks"] is not JsonObject ranksJson) throw Bad("truncation_ranks", "must be an object of linear name → rank");
        var ranks = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var (name, node) in ranksJson)
        {
            if (node is not JsonValue v || !v.TryGetValue<int>(out var rank) || rank <= 0)
                throw Bad($"truncation_ranks.{name}", $"must be a positive integer, found {node?.ToJsonString() ?? "null"}");
            ranks[name] = rank;
        }
        var counts = section["parameters"] as JsonObject;
        long Count(string key) => counts?[key] is JsonValue v && v.TryGetValue<long>(out var n) ? n : 0;
        ArtifactQuantization? quantization = section["quantization"] switch
        {
            null => null,
            JsonObject q when version >= 2 => ArtifactQuantization.FromJson(q, source),
            JsonObject => throw Bad("quantization", $"needs format_version 2 (found {version})"),
            _ => throw Bad("quantization", "must be an object"),
        };
        var linearBytes = section["linear_bytes"] is JsonObject lb
            && lb["before"] is JsonValue b0 && b0.TryGetValue<long>(out var before)
            && lb["after"] is JsonValue b1 && b1.TryGetValue<long>(out var after)
            && lb["bits_per_weight"] is JsonValue b2 && b2.TryGetValue<double>(out var bits)
            ? new LinearBytes(before, after, bits) : null;
        return new LowRankSection
        {
            FormatVersion = version,
            Method = Required<string>("method"),
            RequestedRatio = Required<double>("requested_ratio"),
            AchievedRatio = Required<double>("achieved_ratio"),
            AchievedRatioModel = Required<double>("achieved_ratio_model"),
            FactorDtype = dtype,
            Parameters = new ParameterCounts(Count("compressed_linears_before"), Count("compressed_linears_after"), Count("model_before"), Count("model_after")),
            TruncationRanks = ranks,
            Quantization = quantization,
            LinearBytes = linearBytes,
        };
    }

    /// <summary>The section of <c>config.json</c> in <paramref name="folder"/>, or null when the model is not a compressed artifact.</summary>
    public static LowRankSection? Read(string folder)
    {
        var path = Path.Combine(folder, ArtifactFormat.ConfigFileName);
        var config = ArtifactJson.ReadObject(path, ErrorCodes.BadArtifact);
        return config[ArtifactFormat.LowRankSectionName] switch
        {
            null => null,
            JsonObject section => FromJson(section, path),
            _ => throw new LrkException(ErrorCodes.BadArtifact, $"{path}: '{ArtifactFormat.LowRankSectionName}' must be an object"),
        };
    }
}

/// <summary>JSON file helpers shared by the artifact classes: strict reads with one-line errors, stable writes.</summary>
internal static class ArtifactJson
{
    public static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static JsonObject ReadObject(string path, string errorCode)
    {
        string text;
        try
        {
            text = IO.StrictUtf8.ReadAllText(path, errorCode);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new LrkException(errorCode == ErrorCodes.BadArtifact ? ErrorCodes.BadArtifact : ErrorCodes.ModelNotFound, $"{path}: not found");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(errorCode, $"{path}: cannot be read ({e.Message})");
        }
        try
        {
            IO.JsonTextCheck.Check(text, path, errorCode);
            return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) as JsonObject
                ?? throw new LrkException(errorCode, $"{path}: must hold a JSON object");
        }
        catch (JsonException e)
        {
            throw new LrkException(errorCode, $"{path}: not valid JSON ({e.Message})");
        }
    }

    public static void Write(string path, JsonNode node) =>
        File.WriteAllText(path, node.ToJsonString(Indented) + "\n");
}
