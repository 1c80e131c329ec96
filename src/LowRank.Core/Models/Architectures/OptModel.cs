using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models.Architectures;

/// <summary>
/// OPT (HF modeling_opt.py):
/// <code>
/// h = project_in(embed_tokens[ids]) + embed_positions[pos + 2]
/// per layer (do_layer_norm_before):  h += out_proj(attention(q_proj(x), k_proj(x), v_proj(x)))   x = self_attn_layer_norm(h)
///                                    h += fc2(relu(fc1(x)))                                        x = final_layer_norm(h)
/// logits = lm_head(project_out(final_layer_norm(h)))          (lm_head tied to embed_tokens)
/// </code>
/// Learned positions are offset by 2 (a fairseq legacy). With do_layer_norm_before = false (OPT-350m) the layer
/// norms follow the residual additions instead, and the decoder has no final_layer_norm. project_in/out exist
/// when word_embed_proj_dim differs from hidden_size. Every linear has a bias.
/// </summary>
public sealed class OptModel : DecoderModel
{
    /// <summary>OPTLearnedPositionalEmbedding's offset: position p reads row p + 2.</summary>
    private const int PositionOffset = 2;

    private readonly string prefix;
    private readonly Layer[] layers;
    private readonly Tensor embedTokens;
    private readonly Tensor embedPositions;
    private readonly Tensor? projectIn;
    private readonly Tensor? projectOut;
    private readonly LayerNormWeights? finalLayerNorm;
    private readonly Tensor lmHead;
    private readonly Func<Tensor, Tensor> act;

    private sealed record Layer(
        LayerNormWeights SelfAttnLayerNorm,
        LinearWeight QProj,
        LinearWeight KProj,
        LinearWeight VProj,
        LinearWeight OutProj,
        LayerNormWeights FinalLayerNorm,
        LinearWeight Fc1,
        LinearWeight Fc2)
    {
        public IReadOnlyList<IReadOnlyList<LinearWeight>> Groups { get; } = [[QProj, KProj, VProj], [OutProj], [Fc1], [Fc2]]; // in LinearGroup order
    }

    public OptModel(ModelConfig config, WeightSource weights, DecoderModelOptions? options = null) : base(config, weights, options)
    {
        if (config.Family != ModelFamily.Opt) throw new ArgumentException($"OptModel cannot run the {config.Family} family", nameof(config));
        if (config.HiddenSize % config.NumHeads != 0)
            throw new LrkException(ErrorCodes.BadConfig, $"hidden_size ({config.HiddenSize}) must be a multiple of num_attention_heads ({config.NumHeads})");
        act = Activation(config.HiddenAct);
        // facebook/opt-* checkpoints name tensors "decoder.…"; save_pretrained of OPTForCausalLM writes "model.decoder.…".
        prefix = weights.Contains("model.decoder.embed_tokens.weight") || !weights.Contains("decoder.embed_tokens.weight") ? "model.decoder" : "decoder";
        try
        {
            long hidden = config.HiddenSize, vocab = config.VocabSize, ffn = config.IntermediateSize;
            long projDim = config.WordEmbedProjDim ?? hidden;
            embedTokens = Take($"{prefix}.embed_tokens.weight", vocab, projDim);
            embedPositions = Take($"{prefix}.embed_positions.weight", config.MaxPositions + PositionOffset, hidden);
            if (projDim != hidden)
            {
                projectIn = Take($"{prefix}.project_in.weight", hidden, projDim);
                projectOut = Take($"{prefix}.project_out.weight", projDim, hidden);
            }
            layers = new Layer[config.NumLayers];
            for (var i = 0; i < config.NumLayers; i++)
            {
                var p = $"{prefix}.layers.{i}";
                layers[i] = new Layer(
                    SelfAttnLayerNorm: TakeLayerNorm($"{p}.self_attn_layer_norm", hidden),
                    QProj: TakeLinear(i, $"{p}.self_attn.q_proj", "q_proj", hidden, hidden, bias: true),
                    KProj: TakeLinear(i, $"{p}.self_attn.k_proj", "k_proj", hidden, hidden, bias: true),
                    VProj: TakeLinear(i, $"{p}.self_attn.v_proj", "v_proj", hidden, hidden, bias: true),
                    OutProj: TakeLinear(i, $"{p}.self_attn.out_proj", "out_proj", hidden, hidden, bias: true),
                    FinalLayerNorm: TakeLayerNorm($"{p}.final_layer_norm", hidden),
                    Fc1: TakeLinear(i, $"{p}.fc1", "fc1", ffn, hidden, bias: true),
                    Fc2: TakeLinear(i, $"{p}.fc2", "fc2", hidden, ffn, bias: true));
            }
            // OPTDecoder has a final_layer_norm only with do_layer_norm_before (and not _remove_final_layer_norm).
            if (config.LayerNormBefore && Has($"{prefix}.final_layer_norm.weight"))
                finalLayerNorm = TakeLayerNorm($"{prefix}.final_layer_norm", hidden);
            lmHead = TakeHead(embedTokens, vocab, projDim, embeddingWhenAbsent: true);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override Tensor Embed(Tensor inputIds, long startPosition)
    {
        using var scope = NewDisposeScope();
        var positions = LearnedPositions(embedPositions, startPosition, inputIds.shape[1], PositionOffset);
        var tokens = Lookup(embedTokens, inputIds);
        if (projectIn is not null) tokens = nn.functional.linear(tokens, projectIn);
        return (tokens + positions).MoveToOuterDisposeScope();
    }

    protected override IReadOnlyList<IReadOnlyList<LinearWeight>> Groups(int index) => layers[index].Groups;

    // Post-norm (do_layer_norm_before = false) feeds q/k/v and fc1 the residual stream itself, normalised after each add.
    protected override BlockState Enter(int index, Tensor hidden)
    {
        var layer = layers[index];
        return new BlockState(hidden, Config.LayerNormBefore ? LayerNorm(hidden, layer.SelfAttnLayerNorm) : hidden);
    }

    protected override BlockState Step(int index, LinearGroup group, BlockState state, long startPosition, KvCache? cache)
    {
        var layer = layers[index];
        var preNorm = Config.LayerNormBefore;
        var (hidden, x) = (state.Residual, state.Input!);
        switch (group)
        {
            case LinearGroup.AttentionInput:
                long heads = Config.NumHeads, headDim = Config.HiddenSize / Config.NumHeads;
                var query = SplitHeads(layer.QProj.Forward(x), heads, headDim);
                var key = SplitHeads(layer.KProj.Forward(x), heads, headDim);
                var value = SplitHeads(layer.VProj.Forward(x), heads, headDim);
                if (cache is not null) (key, value) = cache.Append(index, key, value);
                return new BlockState(hidden, Attention(query, key, value, startPosition));
            case LinearGroup.AttentionOutput:
                hidden = hidden + layer.OutProj.Forward(x);
                if (!preNorm) hidden = LayerNorm(hidden, layer.SelfAttnLayerNorm);
                return new BlockState(hidden, preNorm ? LayerNorm(hidden, layer.FinalLayerNorm) : hidden);
            case LinearGroup.MlpInput:
                return new BlockState(hidden, act(layer.Fc1.Forward(x)));
            case LinearGroup.MlpOutput:
                hidden = hidden + layer.Fc2.Forward(x);
                if (!preNorm) hidden = LayerNorm(hidden, layer.FinalLayerNorm);
                return new BlockState(hidden, null);
            default:
                throw new ArgumentOutOfRangeException(nameof(group), group, "an OPT block has the 4 linear groups of LinearGroup");
        }
    }

    public override Tensor Head(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        if (finalLayerNorm is not null) hidden = LayerNorm(hidden, finalLayerNorm);
        if (projectOut is not null) hidden = nn.functional.linear(hidden, projectOut);
        return nn.functional.linear(hidden, lmHead).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
