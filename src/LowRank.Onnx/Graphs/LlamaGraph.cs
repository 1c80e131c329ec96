using System.Globalization;
using LowRank.Models;

namespace LowRank.Onnx.Graphs;

/// <summary>
/// LLaMA 1–3, Mistral and Qwen2 as an ONNX graph, the same math as <c>LlamaModel</c>:
/// <code>
/// h = embed_tokens[input_ids]
/// per layer:  h += o_proj(attention(rope(q_proj(x)), rope(k_proj(x)), v_proj(x)))   with x = input_layernorm(h)
///             h += down_proj(silu(gate_proj(x)) * up_proj(x))                      with x = post_attention_layernorm(h)
/// logits = lm_head(norm(h))            (lm_head = embed_tokens when tie_word_embeddings)
/// </code>
/// RMSNorm in fp32 (Pow, ReduceMean, Add, Sqrt, Div, Mul: the pattern ONNX Runtime fuses into one kernel); rotary
/// angles position_ids · inv_freq in fp32 with rope_scaling applied (RotaryFrequencies, shared with the TorchSharp
/// forward); grouped-query attention; Mistral's/Qwen2's sliding window per layer; Qwen2's q/k/v biases.
/// "dynamic" rope scaling is exact up to max_position_embeddings, the context the export declares.
/// </summary>
public sealed class LlamaGraph : DecoderGraph
{
    private string? cos;
    private string? sin;

    public LlamaGraph(ModelConfig config, IExportWeights weights, OnnxDtype dtype) : base(config, weights, dtype)
    {
        if (config.Family is not (ModelFamily.Llama or ModelFamily.Mistral or ModelFamily.Qwen2))
            throw new ArgumentException($"LlamaGraph cannot export the {config.Family} family", nameof(config));
        if (config.NumKvHeads <= 0 || config.NumHeads % config.NumKvHeads != 0)
            throw new LrkException(ErrorCodes.BadConfig, $"num_attention_heads ({config.NumHeads}) must be a multiple of num_key_value_heads ({config.NumKvHeads})");
        if (config.HiddenAct is not ("silu" or "swish"))
            throw new LrkException(ErrorCodes.UnsupportedArchitecture, $"the ONNX export of LLaMA-family models supports hidden_act silu (got '{config.HiddenAct}')");
    }

    public override int KvHeads => Config.NumKvHeads;

    public override int HeadDim => Config.HeadDim;

    protected override void Forward()
    {
        long hidden = Config.HiddenSize, vocab = Config.VocabSize, ffn = Config.IntermediateSize;
        long qDim = (long)Config.NumHeads * HeadDim, kvDim = (long)KvHeads * HeadDim;
        var embedTokens = Tensor("model.embed_tokens.weight", vocab, hidden);
        var h = Embedding(embedTokens, InputIds);
        RotaryTables();
        for (var i = 0; i < Config.NumLayers; i++)
        {
            var p = $"model.layers.{i}";
            using var layer = Graph.Scope($"layers.{i.ToString(CultureInfo.InvariantCulture)}");
            var x = RmsNorm(h, $"{p}.input_layernorm.weight");
            var query = Rotate(SplitHeads(Linear(x, $"{p}.self_attn.q_proj", qDim, hidden, Config.AttentionBias), Config.NumHeads, HeadDim));
            var key = Rotate(SplitHeads(Linear(x, $"{p}.self_attn.k_proj", kvDim, hidden, Config.AttentionBias), KvHeads, HeadDim));
            var value = SplitHeads(Linear(x, $"{p}.self_attn.v_proj", kvDim, hidden, Config.AttentionBias), KvHeads, HeadDim);
            var (keys, values) = CachedKeysValues(i, key, value);
            var attention = Attention(query, keys, values, Config.NumHeads, Config.SlidingWindowFor(i));
            h = Graph.Op("Add", h, Linear(attention, $"{p}.self_attn.o_proj", hidden, qDim, Config.AttentionOutputBias));

            x = RmsNorm(h, $"{p}.post_attention_layernorm.weight");
            var gate = Linear(x, $"{p}.mlp.gate_proj", ffn, hidden, Config.MlpBias);
            var up = Linear(x, $"{p}.mlp.up_proj", ffn, hidden, Config.MlpBias);
            var activated = Graph.Op("Mul", Graph.Op("Mul", gate, Graph.Op("Sigmoid", gate)), up);
            h = Graph.Op("Add", h, Linear(activated, $"{p}.mlp.down_proj", hidden, ffn, Config.MlpBias));
        }
        h = RmsNorm(h, "model.norm.weight");
        // Tied: HF ties lm_head to embed_tokens after loading, so a stored lm_head.weight is ignored.
        Head(h, Config.TieWordEmbeddings ? embedTokens : Tensor("lm_head.weight", vocab, hidden), hidden);
    }

    /// <summary>LlamaRMSNorm: normalise in fp32, cast back, then scale (the order matters in half precision).</summary>
    private string RmsNorm(string x, string weightName)
    {
        using var scope = Graph.Scope(weightName.Split('.')[^2]);
        var x32 = Dtype == OnnxDtype.Float ? x : Cast(x, OnnxDtype.Float);
        var variance = Graph.Node("ReduceMean", [Graph.Op("Pow", x32, Graph.Scalar(2, OnnxDtype.Float))],
            attributes: [OnnxGraph.Attribute("axes", new long[] { -1 }), OnnxGraph.Attribute("keepdims", 1L)]);
        var normalised = Graph.Op("Div", x32, Graph.Op("Sqrt", Graph.Op("Add", variance, Graph.Scalar(Config.NormEps, OnnxDtype.Float))));
        if (Dtype != OnnxDtype.Float) normalised = Cast(normalised, Dtype);
        return Graph.Op("Mul", Tensor(weightName, Config.HiddenSize), normalised);
    }

    /// <summary>cos and sin of position_ids · inv_freq, [batch, 1, seq, head_dim] (the half-table repeated, HF's
    /// <c>cat([freqs, freqs])</c>), computed in fp32 and cast to the graph dtype.</summary>
    private void RotaryTables()
    {
        using var scope = Graph.Scope("rotary");
        var inverse = RotaryFrequencies.Base(Config).Select(f => (float)f).ToArray();
        var positions = Graph.Op("Unsqueeze", Cast(PositionIds, OnnxDtype.Float), Graph.Int64s(-1));
        var frequencies = Graph.Op("Mul", positions, Graph.Floats("rotary.inv_freq", inverse, OnnxDtype.Float));
        var angles = Graph.Node("Concat", [frequencies, frequencies], attributes: [OnnxGraph.Attribute("axis", -1L)]);
        var heads = Graph.Int64s(1);
        cos = Graph.Op("Unsqueeze", Graph.Op("Cos", angles), heads);
        sin = Graph.Op("Unsqueeze", Graph.Op("Sin", angles), heads);
        if (Dtype == OnnxDtype.Float) return;
        cos = Cast(cos, Dtype);
        sin = Cast(sin, Dtype);
    }

    /// <summary>x·cos + rotate_half(x)·sin for x [batch, heads, seq, d]; rotate_half(x) = [−x₂, x₁] of its halves.</summary>
    private string Rotate(string x)
    {
        using var scope = Graph.Scope("rope");
        var half = HeadDim / 2;
        var halves = Graph.Node("Split", [x, Graph.Int64s(half, half)], 2, attributes: [OnnxGraph.Attribute("axis", -1L)]);
        var rotated = Graph.Node("Concat", [Graph.Op("Neg", halves[1]), halves[0]], attributes: [OnnxGraph.Attribute("axis", -1L)]);
        return Graph.Op("Add", Graph.Op("Mul", x, cos!), Graph.Op("Mul", rotated, sin!));
    }
}
