using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank.Models;

/// <summary>
/// Reads an HF <c>config.json</c> into a <see cref="ModelConfig"/>, with transformers' defaults for keys a config
/// may omit, and strict checks for the sizes the forward pass relies on (positive, heads dividing the hidden size,
/// query heads a multiple of key/value heads). Per family:
/// <list type="bullet">
/// <item>LLaMA (LlamaForCausalLM): GQA via num_key_value_heads, optional head_dim, rope_theta and rope_scaling
/// (linear, dynamic, llama3), attention_bias (q/k/v/o), mlp_bias.</item>
/// <item>Mistral: LLaMA math without biases; sliding_window on every layer (HF default 4096 when the key is absent, none when null).</item>
/// <item>Qwen2: q/k/v always have biases and o_proj never (<see cref="ModelConfig.AttentionBias"/> true,
/// <see cref="ModelConfig.AttentionOutputBias"/> false); sliding_window only with use_sliding_window, from layer max_window_layers on.</item>
/// <item>OPT: ffn_dim, word_embed_proj_dim, do_layer_norm_before, enable_bias, activation_function (relu).</item>
/// <item>GPT-2: n_embd/n_layer/n_head/n_positions, n_inner (null → 4·n_embd), layer_norm_epsilon, gelu_new.</item>
/// </list>
/// transformers ≥ 5 keeps rope settings in <c>rope_parameters</c> and the dtype in <c>dtype</c>; both spellings are read.
/// A <c>layer_types</c> list (full_attention/sliding_attention per layer) decides which layers use the sliding window.
/// </summary>
public static class ModelConfigReader
{
    public const string FileName = "config.json";

    /// <summary>Architecture names (HF <c>architectures[0]</c>) → the stock one: a compressed artifact's own name
    /// (<c>LowRankLlamaForCausalLM</c>, see <see cref="HuggingFaceClasses"/>) reads as its family's.</summary>
    private static readonly Dictionary<string, HuggingFaceClasses> Architectures =
        HuggingFaceClasses.All.SelectMany(c => new[] { (c.Architecture, c), (c.LowRankArchitecture, c) }).ToDictionary(p => p.Item1, p => p.c, StringComparer.Ordinal);

    /// <summary>HF model_type values (stock and <c>lowrank_*</c>), used only when a config lacks <c>architectures</c>.</summary>
    private static readonly Dictionary<string, HuggingFaceClasses> ModelTypes =
        HuggingFaceClasses.All.SelectMany(c => new[] { (c.ModelType, c), (c.LowRankModelType, c) }).ToDictionary(p => p.Item1, p => p.c, StringComparer.Ordinal);

    /// <summary>The architectures (HF <c>architectures[0]</c>) that can be read.</summary>
    public static IReadOnlyCollection<string> SupportedArchitectures { get; } = HuggingFaceClasses.All.Select(c => c.Architecture).ToArray();

    /// <summary>Reads <c>config.json</c> of a model folder, or the JSON file given.</summary>
    public static ModelConfig Read(string folderOrConfigJson)
    {
        var path = Directory.Exists(folderOrConfigJson) ? Path.Combine(folderOrConfigJson, FileName) : folderOrConfigJson;
        IO.RegularFile.Require(path, ErrorCodes.BadConfig, "a model's config");
        string text;
        try
        {
            text = IO.StrictUtf8.ReadAllText(path, ErrorCodes.BadConfig);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new LrkException(ErrorCodes.ModelNotFound, $"{path}: not found (a Hugging Face model folder holds a {FileName})");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(ErrorCodes.BadConfig, $"{path}: cannot be read ({e.Message})");
        }
        return Parse(text, path);
    }

    /// <summary>Parses config JSON text; <paramref name="source"/> names it in errors.</summary>
    public static ModelConfig Parse(string json, string source = FileName)
    {
        JsonNode? node;
        try
        {
            using var document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 32 });
            IO.JsonTextCheck.Check(document.RootElement, source, ErrorCodes.BadConfig);
            // JsonObject would only notice a duplicate key when first read, with an ArgumentException.
            RejectDuplicateKeys(document.RootElement, "", source);
            node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException e)
        {
            throw new LrkException(ErrorCodes.BadConfig, $"{source}: not valid JSON ({e.Message})");
        }
        if (node is not JsonObject root)
            throw new LrkException(ErrorCodes.BadConfig, $"{source}: must be a JSON object");
        var config = new ConfigJson(root, source);
        var classes = Architecture(root, config);
        var architecture = classes.Architecture;
        var family = classes.Family;
        var parsed = family switch
        {
            ModelFamily.Llama or ModelFamily.Mistral or ModelFamily.Qwen2 => ReadLlamaLike(config, family),
            ModelFamily.Opt => ReadOpt(config),
            ModelFamily.Gpt2 => ReadGpt2(config),
            _ => throw new InvalidOperationException($"family {family} has no reader"),
        };
        return parsed with { Architecture = architecture, Family = family, Raw = root };
    }

    private static void RejectDuplicateKeys(JsonElement element, string path, string source)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in element.EnumerateObject())
            {
                var keyPath = path + property.Name;
                if (!seen.Add(property.Name)) throw new LrkException(ErrorCodes.BadConfig, $"{source}: '{keyPath}' appears twice");
                RejectDuplicateKeys(property.Value, keyPath + ".", source);
            }
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            var index = 0;
            foreach (var item in element.EnumerateArray())
                RejectDuplicateKeys(item, $"{path.TrimEnd('.')}[{index++}].", source);
        }
    }

    private static HuggingFaceClasses Architecture(JsonObject root, ConfigJson config)
    {
        var supported = string.Join(", ", SupportedArchitectures);
        if (root["architectures"] is JsonArray { Count: > 0 } list)
        {
            if (list[0] is not { } first || first.GetValueKind() != JsonValueKind.String)
                throw config.Bad("architectures[0]", "must be a string");
            var name = first.GetValue<string>();
            return Architectures.TryGetValue(name, out var classes)
                ? classes
                : throw new LrkException(ErrorCodes.UnsupportedArchitecture, $"{config.Source}: architecture '{name}' is not supported (supported: {supported})");
        }
        if (root.ContainsKey("architectures") && root["architectures"] is not null and not JsonArray)
            throw config.Bad("architectures", "must be a list of strings");
        var modelType = config.OptionalString("model_type");
        if (modelType is not null && ModelTypes.TryGetValue(modelType, out var byType)) return byType;
        throw new LrkException(ErrorCodes.UnsupportedArchitecture, modelType is null
            ? $"{config.Source}: names no architecture ('architectures' and 'model_type' are missing); supported: {supported}"
            : $"{config.Source}: names no architecture ('architectures' is missing) and model_type '{modelType}' is not supported (supported: {supported})");
    }

    private static ModelConfig ReadLlamaLike(ConfigJson c, ModelFamily family)
    {
        var hidden = c.RequiredPositiveInt("hidden_size");
        var heads = c.RequiredPositiveInt("num_attention_heads");
        var kvHeads = c.OptionalPositiveInt("num_key_value_heads") ?? heads;
        if (heads % kvHeads != 0)
            throw c.Bad("num_attention_heads", $"({heads}) must be a multiple of 'num_key_value_heads' ({kvHeads})");
        var headDim = c.OptionalPositiveInt("head_dim") ?? HeadDim(c, hidden, heads, "hidden_size", "num_attention_heads");
        var (theta, scaling) = ReadRope(c);

        int? window = null;
        int? maxWindowLayers = null;
        if (family == ModelFamily.Mistral)
        {
            window = c.IsPresentAndNull("sliding_window") ? null : c.OptionalPositiveInt("sliding_window") ?? 4096;
        }
        else if (family == ModelFamily.Qwen2 && (c.OptionalBool("use_sliding_window") ?? false))
        {
            window = c.OptionalPositiveInt("sliding_window") ?? 4096;
            maxWindowLayers = c.OptionalInt("max_window_layers") ?? 28;
            if (maxWindowLayers < 0) throw c.Bad("max_window_layers", $"must not be negative, found {maxWindowLayers}");
        }

        var layers = c.RequiredPositiveInt("num_hidden_layers");
        var layerTypes = c.OptionalStringList("layer_types", ["full_attention", "sliding_attention"]);
        if (layerTypes is not null && layerTypes.Count != layers)
            throw c.Bad("layer_types", $"lists {layerTypes.Count} layers but 'num_hidden_layers' is {layers}");

        var attentionBias = family switch
        {
            ModelFamily.Llama => c.OptionalBool("attention_bias") ?? false,
            ModelFamily.Qwen2 => true,
            _ => false,
        };
        var defaultSpecialIds = family != ModelFamily.Qwen2;
        var eos = EosTokens(c, defaultSpecialIds && !c.IsPresentAndNull("eos_token_id") ? 2 : null);
        return new ModelConfig
        {
            Family = family,
            Architecture = "",
            HiddenSize = hidden,
            IntermediateSize = c.RequiredPositiveInt("intermediate_size"),
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = c.RequiredPositiveInt("vocab_size"),
            MaxPositions = c.OptionalPositiveInt("max_position_embeddings") ?? family switch
            {
                ModelFamily.Llama => 2048,
                ModelFamily.Mistral => 4096 * 32,
                _ => 32768,
            },
            NormEps = c.OptionalPositiveDouble("rms_norm_eps") ?? 1e-6,
            RopeTheta = theta,
            RopeScaling = scaling,
            TieWordEmbeddings = c.OptionalBool("tie_word_embeddings") ?? false,
            SlidingWindow = window,
            MaxWindowLayers = maxWindowLayers,
            LayerTypes = layerTypes,
            AttentionBias = attentionBias,
            AttentionOutputBias = family == ModelFamily.Llama && attentionBias,
            MlpBias = family == ModelFamily.Llama && (c.OptionalBool("mlp_bias") ?? false),
            HiddenAct = c.OptionalString("hidden_act") ?? "silu",
            BosTokenId = c.OptionalInt("bos_token_id") ?? (defaultSpecialIds && !c.IsPresentAndNull("bos_token_id") ? 1 : null),
            EosTokenId = eos.First,
            EosTokenIds = eos.All,
            PadTokenId = c.OptionalInt("pad_token_id"),
            TorchDtype = Dtype(c),
        };
    }

    private static ModelConfig ReadOpt(ConfigJson c)
    {
        var hidden = c.RequiredPositiveInt("hidden_size");
        var heads = c.RequiredPositiveInt("num_attention_heads");
        var projection = c.OptionalPositiveInt("word_embed_proj_dim") ?? hidden;
        if (c.OptionalBool("layer_norm_elementwise_affine") == false)
            throw c.Bad("layer_norm_elementwise_affine", "= false (LayerNorms without weights) is not supported");
        if (c.OptionalBool("_remove_final_layer_norm") == true)
            throw c.Bad("_remove_final_layer_norm", "= true (no final LayerNorm) is not supported");
        var bias = c.OptionalBool("enable_bias") ?? true;
        var eos = EosTokens(c, 2);
        return new ModelConfig
        {
            Family = ModelFamily.Opt,
            Architecture = "",
            HiddenSize = hidden,
            IntermediateSize = c.RequiredPositiveInt("ffn_dim"),
            NumLayers = c.RequiredPositiveInt("num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = heads,
            HeadDim = HeadDim(c, hidden, heads, "hidden_size", "num_attention_heads"),
            VocabSize = c.RequiredPositiveInt("vocab_size"),
            MaxPositions = c.OptionalPositiveInt("max_position_embeddings") ?? 2048,
            NormEps = 1e-5,
            TieWordEmbeddings = c.OptionalBool("tie_word_embeddings") ?? true,
            AttentionBias = bias,
            AttentionOutputBias = bias,
            MlpBias = bias,
            HiddenAct = c.OptionalString("activation_function") ?? "relu",
            BosTokenId = c.OptionalInt("bos_token_id") ?? 2,
            EosTokenId = eos.First,
            EosTokenIds = eos.All,
            PadTokenId = c.OptionalInt("pad_token_id") ?? 1,
            WordEmbedProjDim = projection != hidden ? projection : null,
            LayerNormBefore = c.OptionalBool("do_layer_norm_before") ?? true,
            TorchDtype = Dtype(c),
        };
    }

    private static ModelConfig ReadGpt2(ConfigJson c)
    {
        var hidden = c.RequiredPositiveInt("n_embd");
        var heads = c.RequiredPositiveInt("n_head");
        if (c.OptionalBool("scale_attn_weights") == false)
            throw c.Bad("scale_attn_weights", "= false (unscaled attention) is not supported");
        if (c.OptionalBool("scale_attn_by_inverse_layer_idx") == true)
            throw c.Bad("scale_attn_by_inverse_layer_idx", "= true is not supported");
        var eos = EosTokens(c, 50256);
        return new ModelConfig
        {
            Family = ModelFamily.Gpt2,
            Architecture = "",
            HiddenSize = hidden,
            IntermediateSize = c.OptionalPositiveInt("n_inner") ?? 4 * hidden,
            NumLayers = c.RequiredPositiveInt("n_layer"),
            NumHeads = heads,
            NumKvHeads = heads,
            HeadDim = HeadDim(c, hidden, heads, "n_embd", "n_head"),
            VocabSize = c.RequiredPositiveInt("vocab_size"),
            MaxPositions = c.OptionalPositiveInt("n_positions") ?? 1024,
            NormEps = c.OptionalPositiveDouble("layer_norm_epsilon") ?? 1e-5,
            TieWordEmbeddings = c.OptionalBool("tie_word_embeddings") ?? true,
            AttentionBias = true,
            AttentionOutputBias = true,
            MlpBias = true,
            HiddenAct = c.OptionalString("activation_function") ?? "gelu_new",
            BosTokenId = c.OptionalInt("bos_token_id") ?? 50256,
            EosTokenId = eos.First,
            EosTokenIds = eos.All,
            PadTokenId = c.OptionalInt("pad_token_id"),
            TorchDtype = Dtype(c),
        };
    }

    private static int HeadDim(ConfigJson c, int hidden, int heads, string hiddenKey, string headsKey) =>
        hidden % heads == 0 ? hidden / heads : throw c.Bad(hiddenKey, $"({hidden}) is not divisible by '{headsKey}' ({heads})");

    /// <summary>eos_token_id, one id or a list (LLaMA-3 lists several): all of them and the first; the family's
    /// default id when the key is absent (none when <paramref name="fallback"/> is null).</summary>
    private static (int? First, IReadOnlyList<int> All) EosTokens(ConfigJson c, int? fallback)
    {
        var listed = c.OptionalIntList("eos_token_id");
        IReadOnlyList<int> all = listed.Count > 0 ? listed : fallback is { } id ? [id] : [];
        return (all.Count > 0 ? all[0] : null, all);
    }

    private static string Dtype(ConfigJson c) => c.OptionalString("torch_dtype") ?? c.OptionalString("dtype") ?? "float32";

    /// <summary>rope_theta and rope_scaling, or transformers 5's rope_parameters holding both.</summary>
    private static (double Theta, RopeScaling? Scaling) ReadRope(ConfigJson c)
    {
        var parameters = c.OptionalObject("rope_parameters");
        var theta = parameters?.OptionalPositiveDouble("rope_theta") ?? c.OptionalPositiveDouble("rope_theta") ?? 10000.0;
        var scaling = c.OptionalObject("rope_scaling") ?? parameters;
        if (scaling is null) return (theta, null);
        var type = scaling.OptionalString("rope_type") ?? scaling.OptionalString("type");
        switch (type)
        {
            case null or "default":
                return (theta, null);
            case "linear" or "dynamic":
                return (theta, new RopeScaling(type, RequiredFactor(scaling, "factor"), null, null,
                    scaling.OptionalPositiveInt("original_max_position_embeddings")));
            case "llama3":
                var low = RequiredFactor(scaling, "low_freq_factor");
                var high = RequiredFactor(scaling, "high_freq_factor");
                if (high <= low) throw scaling.Bad("high_freq_factor", $"({high}) must exceed 'low_freq_factor' ({low})");
                return (theta, new RopeScaling(type, RequiredFactor(scaling, "factor"), low, high,
                    scaling.OptionalPositiveInt("original_max_position_embeddings") ?? throw scaling.Bad("original_max_position_embeddings", "is required for llama3 scaling but missing")));
            default:
                throw scaling.Bad("rope_type", $"'{type}' is not supported (supported: default, linear, dynamic, llama3)");
        }
    }

    private static double RequiredFactor(ConfigJson scaling, string key) =>
        scaling.OptionalPositiveDouble(key) ?? throw scaling.Bad(key, "is required but missing");
}
