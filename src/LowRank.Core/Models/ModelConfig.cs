namespace LowRank.Models;

/// <summary>The supported decoder families (HF <c>architectures[0]</c> in parentheses).</summary>
public enum ModelFamily
{
    /// <summary>LLaMA 1–3 (LlamaForCausalLM).</summary>
    Llama,
    /// <summary>Mistral (MistralForCausalLM): LLaMA math plus an optional sliding attention window.</summary>
    Mistral,
    /// <summary>Qwen2 (Qwen2ForCausalLM): LLaMA math plus q/k/v biases.</summary>
    Qwen2,
    /// <summary>OPT (OPTForCausalLM): learned positions (offset 2), pre-LayerNorm, ReLU MLP.</summary>
    Opt,
    /// <summary>GPT-2 (GPT2LMHeadModel): learned positions, Conv1D ([in, out]) weights, fused c_attn, GELU (tanh).</summary>
    Gpt2,
}

/// <summary>
/// The parts of an HF <c>config.json</c> the forward passes use, normalised across families
/// (GPT-2's n_embd/n_layer/n_head map to HiddenSize/NumLayers/NumHeads, and so on).
/// <see cref="Raw"/> keeps the original JSON so a compressed artifact can write it back unchanged.
/// </summary>
public sealed record ModelConfig
{
    public required ModelFamily Family { get; init; }
    public required string Architecture { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public required int MaxPositions { get; init; }
    public double NormEps { get; init; } = 1e-5;
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>HF <c>rope_scaling</c> (LLaMA-3 "llama3", "linear", "dynamic"); null when absent.</summary>
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Attention window in tokens (Mistral; Qwen2 with use_sliding_window); null = full causal attention.
    /// Which layers use it: <see cref="SlidingWindowFor"/>.</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>Qwen2 only: layers with index ≥ this use <see cref="SlidingWindow"/> (HF max_window_layers); null = all layers.</summary>
    public int? MaxWindowLayers { get; init; }
    /// <summary>transformers ≥ 4.54 <c>layer_types</c> ("full_attention"/"sliding_attention" per layer) when the config
    /// lists them; they take precedence over <see cref="MaxWindowLayers"/>.</summary>
    public IReadOnlyList<string>? LayerTypes { get; init; }
    /// <summary>q/k/v projections have biases (LLaMA/Mistral attention_bias; always for Qwen2; OPT enable_bias; GPT-2).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>The output projection (o_proj/out_proj/c_proj) has a bias. Equals <see cref="AttentionBias"/> except for
    /// Qwen2, whose q/k/v have biases and o_proj has none.</summary>
    public bool AttentionOutputBias { get; init; }
    public bool MlpBias { get; init; }
    public string HiddenAct { get; init; } = "silu";
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }
    /// <summary>Every end-of-sequence id (LLaMA-3 lists several); <see cref="EosTokenId"/> is the first.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public int? PadTokenId { get; init; }
    /// <summary>OPT only: word_embed_proj_dim when it differs from hidden_size (project_in/out).</summary>
    public int? WordEmbedProjDim { get; init; }
    /// <summary>OPT only: do_layer_norm_before (true for every OPT size except 350m).</summary>
    public bool LayerNormBefore { get; init; } = true;
    public string TorchDtype { get; init; } = "float32";
    public System.Text.Json.Nodes.JsonObject? Raw { get; init; }

    /// <summary>The attention window of layer <paramref name="layer"/>, or null when it attends to every earlier position.</summary>
    public int? SlidingWindowFor(int layer)
    {
        if (SlidingWindow is not { } window) return null;
        if (LayerTypes is { } types) return types[layer] == "sliding_attention" ? window : null;
        return MaxWindowLayers is not { } first || layer >= first ? window : null;
    }
}

public sealed record RopeScaling(string Type, double Factor, double? LowFreqFactor, double? HighFreqFactor, int? OriginalMaxPositions);
