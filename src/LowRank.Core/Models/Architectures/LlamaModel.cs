using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models.Architectures;

/// <summary>
/// LLaMA 1–3, Mistral and Qwen2 (HF modeling_llama.py / modeling_mistral.py / modeling_qwen2.py):
/// <code>
/// h = embed_tokens[ids]
/// per layer:  h += o_proj(attention(rope(q_proj(x)), rope(k_proj(x)), v_proj(x)))   with x = input_layernorm(h)
///             h += down_proj(act(gate_proj(x)) * up_proj(x))                       with x = post_attention_layernorm(h)
/// logits = lm_head(norm(h))            (lm_head tied to embed_tokens when tie_word_embeddings)
/// </code>
/// RMSNorm, rotary embeddings in the rotate-half convention with rope_theta and rope_scaling ("linear", "dynamic",
/// "llama3"), grouped-query attention. Mistral adds a sliding attention window, Qwen2 biases on q/k/v.
/// </summary>
public sealed class LlamaModel : DecoderModel
{
    private readonly Layer[] layers;
    private readonly Tensor embedTokens;
    private readonly Tensor norm;
    private readonly Tensor lmHead;
    private readonly Func<Tensor, Tensor> act;
    private readonly RotaryEmbedding rotary;

    private sealed record Layer(
        Tensor InputLayernorm,
        LinearWeight QProj,
        LinearWeight KProj,
        LinearWeight VProj,
        LinearWeight OProj,
        Tensor PostAttentionLayernorm,
        LinearWeight GateProj,
        LinearWeight UpProj,
        LinearWeight DownProj,
        int? SlidingWindow)
    {
        public IReadOnlyList<IReadOnlyList<LinearWeight>> Groups { get; } = [[QProj, KProj, VProj], [OProj], [GateProj, UpProj], [DownProj]]; // in LinearGroup order
    }

    public LlamaModel(ModelConfig config, WeightSource weights, DecoderModelOptions? options = null) : base(config, weights, options)
    {
        if (config.Family is not (ModelFamily.Llama or ModelFamily.Mistral or ModelFamily.Qwen2))
            throw new ArgumentException($"LlamaModel cannot run the {config.Family} family", nameof(config));
        if (config.NumKvHeads <= 0 || config.NumHeads % config.NumKvHeads != 0)
            throw new LrkException(ErrorCodes.BadConfig, $"num_attention_heads ({config.NumHeads}) must be a multiple of num_key_value_heads ({config.NumKvHeads})");
        act = Activation(config.HiddenAct);
        rotary = new RotaryEmbedding(config);
        try
        {
            long hidden = config.HiddenSize, vocab = config.VocabSize, ffn = config.IntermediateSize;
            long qDim = (long)config.NumHeads * config.HeadDim, kvDim = (long)config.NumKvHeads * config.HeadDim;
            // Qwen2 always has q/k/v biases and none on o_proj; LLaMA's attention_bias puts one on all four.
            bool qkvBias = config.AttentionBias, oBias = config.AttentionOutputBias;

            embedTokens = Take("model.embed_tokens.weight", vocab, hidden);
            layers = new Layer[config.NumLayers];
            for (var i = 0; i < config.NumLayers; i++)
            {
                var p = $"model.layers.{i}";
                layers[i] = new Layer(
                    InputLayernorm: Take($"{p}.input_layernorm.weight", hidden),
                    QProj: TakeLinear(i, $"{p}.self_attn.q_proj", "q_proj", qDim, hidden, qkvBias),
                    KProj: TakeLinear(i, $"{p}.self_attn.k_proj", "k_proj", kvDim, hidden, qkvBias),
                    VProj: TakeLinear(i, $"{p}.self_attn.v_proj", "v_proj", kvDim, hidden, qkvBias),
                    OProj: TakeLinear(i, $"{p}.self_attn.o_proj", "o_proj", hidden, qDim, oBias),
                    PostAttentionLayernorm: Take($"{p}.post_attention_layernorm.weight", hidden),
                    GateProj: TakeLinear(i, $"{p}.mlp.gate_proj", "gate_proj", ffn, hidden, config.MlpBias),
                    UpProj: TakeLinear(i, $"{p}.mlp.up_proj", "up_proj", ffn, hidden, config.MlpBias),
                    DownProj: TakeLinear(i, $"{p}.mlp.down_proj", "down_proj", hidden, ffn, config.MlpBias),
                    SlidingWindow: config.SlidingWindowFor(i));
            }
            norm = Take("model.norm.weight", hidden);
            // Tied: HF ties lm_head to embed_tokens after loading, so a stored lm_head.weight is ignored.
            lmHead = TakeHead(embedTokens, vocab, hidden, embeddingWhenAbsent: false);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override Tensor Embed(Tensor inputIds, long startPosition) => Lookup(embedTokens, inputIds);

    protected override IReadOnlyList<IReadOnlyList<LinearWeight>> Groups(int index) => layers[index].Groups;

    protected override BlockState Enter(int index, Tensor hidden) => new(hidden, RmsNorm(hidden, layers[index].InputLayernorm));

    protected override BlockState Step(int index, LinearGroup group, BlockState state, long startPosition, KvCache? cache)
    {
        var layer = layers[index];
        var (hidden, x) = (state.Residual, state.Input!);
        switch (group)
        {
            case LinearGroup.AttentionInput:
                return new BlockState(hidden, SelfAttention(index, layer, x, startPosition, cache));
            case LinearGroup.AttentionOutput:
                hidden = hidden + layer.OProj.Forward(x);
                return new BlockState(hidden, RmsNorm(hidden, layer.PostAttentionLayernorm));
            case LinearGroup.MlpInput:
                var gate = layer.GateProj.Forward(x);
                var up = layer.UpProj.Forward(x);
                return new BlockState(hidden, act(gate) * up);
            case LinearGroup.MlpOutput:
                return new BlockState(hidden + layer.DownProj.Forward(x), null);
            default:
                throw new ArgumentOutOfRangeException(nameof(group), group, "a LLaMA block has the 4 linear groups of LinearGroup");
        }
    }

    /// <summary>q/k/v of <paramref name="x"/>, rotated, against the cached keys and values too when there is a cache.</summary>
    private Tensor SelfAttention(int index, Layer layer, Tensor x, long startPosition, KvCache? cache)
    {
        long heads = Config.NumHeads, kvHeads = Config.NumKvHeads, headDim = Config.HeadDim;
        var query = SplitHeads(layer.QProj.Forward(x), heads, headDim);
        var key = SplitHeads(layer.KProj.Forward(x), kvHeads, headDim);
        var value = SplitHeads(layer.VProj.Forward(x), kvHeads, headDim);

        var (cos, sin) = rotary.CosSin(startPosition, x.shape[1], query.dtype, query.device);
        query = RotaryEmbedding.Apply(query, cos, sin);
        key = RotaryEmbedding.Apply(key, cos, sin);
        if (cache is not null) (key, value) = cache.Append(index, key, value);
        return Attention(query, key, value, startPosition, layer.SlidingWindow);
    }

    public override Tensor Head(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var logits = nn.functional.linear(RmsNorm(hidden, norm), lmHead);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>LlamaRMSNorm: normalise in fp32, cast back, then scale (the order matters in half precision).</summary>
    private Tensor RmsNorm(Tensor x, Tensor weight)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var normalised = x32 * rsqrt(x32.pow(2).mean([-1], keepdim: true) + Config.NormEps);
        return (weight * normalised.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>Rotary position embedding, HF rotate-half convention: dimension i pairs with i + d/2.</summary>
    private sealed class RotaryEmbedding
    {
        private readonly ModelConfig config;
        private readonly double[] baseInverseFrequencies;

        public RotaryEmbedding(ModelConfig config)
        {
            this.config = config;
            baseInverseFrequencies = RotaryFrequencies.Base(config);
        }

        /// <summary>cos and sin tables [seq, d] for positions start..start+seq-1 (fp32 math, cast to <paramref name="dtype"/>).</summary>
        public (Tensor Cos, Tensor Sin) CosSin(long start, long count, ScalarType dtype, Device device)
        {
            using var scope = NewDisposeScope();
            var inverse = baseInverseFrequencies;
            if (config.RopeScaling is { Type: "dynamic" } dynamic && start + count > config.MaxPositions)
            {
                // Dynamic NTK: grow θ with the sequence once it passes the trained length.
                var seqLen = start + count;
                var d = config.HeadDim;
                var theta = config.RopeTheta * Math.Pow(dynamic.Factor * seqLen / config.MaxPositions - (dynamic.Factor - 1), d / (d - 2.0));
                inverse = RotaryFrequencies.ForTheta(theta, d);
            }
            var invFreq = tensor(inverse.Select(f => (float)f).ToArray(), dtype: ScalarType.Float32, device: device);
            var positions = arange(start, start + count, dtype: ScalarType.Float32, device: device);
            var freqs = outer(positions, invFreq);
            var emb = cat([freqs, freqs], -1);
            return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
        }

        /// <summary>x·cos + rotate_half(x)·sin for x [batch, heads, seq, d].</summary>
        public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
        {
            using var scope = NewDisposeScope();
            var half = x.shape[^1] / 2;
            var rotated = cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
            return (x * cos + rotated * sin).MoveToOuterDisposeScope();
        }
    }
}
