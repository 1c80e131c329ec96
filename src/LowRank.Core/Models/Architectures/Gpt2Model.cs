using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models.Architectures;

/// <summary>
/// GPT-2 (HF modeling_gpt2.py):
/// <code>
/// h = wte[ids] + wpe[pos]
/// per block:  q, k, v = split(attn.c_attn(ln_1(h)));   h += attn.c_proj(attention(q, k, v))
///             h += mlp.c_proj(gelu_new(mlp.c_fc(ln_2(h))))
/// logits = lm_head(ln_f(h))        (lm_head tied to wte)
/// </code>
/// GPT-2 stores its linears as Conv1D with weights [in, out]; they are transposed on load so every
/// <see cref="LinearWeight"/> is [out, in]. c_attn is one fused linear whose output is q, k, v side by side.
/// </summary>
public sealed class Gpt2Model : DecoderModel
{
    private readonly Gpt2Block[] blocks;
    private readonly Tensor wte;
    private readonly Tensor wpe;
    private readonly LayerNormWeights lnF;
    private readonly Tensor lmHead;
    private readonly Func<Tensor, Tensor> act;

    private sealed record Gpt2Block(
        LayerNormWeights Ln1,
        LinearWeight CAttn,
        LinearWeight AttnCProj,
        LayerNormWeights Ln2,
        LinearWeight CFc,
        LinearWeight MlpCProj)
    {
        public IReadOnlyList<IReadOnlyList<LinearWeight>> Groups { get; } = [[CAttn], [AttnCProj], [CFc], [MlpCProj]]; // in LinearGroup order
    }

    public Gpt2Model(ModelConfig config, WeightSource weights, DecoderModelOptions? options = null) : base(config, weights, options)
    {
        if (config.Family != ModelFamily.Gpt2) throw new ArgumentException($"Gpt2Model cannot run the {config.Family} family", nameof(config));
        if (config.HiddenSize % config.NumHeads != 0)
            throw new LrkException(ErrorCodes.BadConfig, $"n_embd ({config.HiddenSize}) must be a multiple of n_head ({config.NumHeads})");
        act = Activation(config.HiddenAct);
        // The original openai-community/gpt2 checkpoints name tensors "h.0.…"; save_pretrained of GPT2LMHeadModel writes "transformer.h.0.…".
        var prefix = weights.Contains("wte.weight") && !weights.Contains("transformer.wte.weight") ? "" : "transformer.";
        try
        {
            long hidden = config.HiddenSize, vocab = config.VocabSize, inner = config.IntermediateSize;
            wte = Take($"{prefix}wte.weight", vocab, hidden);
            wpe = Take($"{prefix}wpe.weight", config.MaxPositions, hidden);
            blocks = new Gpt2Block[config.NumLayers];
            for (var i = 0; i < config.NumLayers; i++)
            {
                var p = $"{prefix}h.{i}";
                blocks[i] = new Gpt2Block(
                    Ln1: TakeLayerNorm($"{p}.ln_1", hidden),
                    CAttn: TakeLinear(i, $"{p}.attn.c_attn", "attn.c_attn", 3 * hidden, hidden, bias: true, conv1D: true),
                    AttnCProj: TakeLinear(i, $"{p}.attn.c_proj", "attn.c_proj", hidden, hidden, bias: true, conv1D: true),
                    Ln2: TakeLayerNorm($"{p}.ln_2", hidden),
                    CFc: TakeLinear(i, $"{p}.mlp.c_fc", "mlp.c_fc", inner, hidden, bias: true, conv1D: true),
                    MlpCProj: TakeLinear(i, $"{p}.mlp.c_proj", "mlp.c_proj", hidden, inner, bias: true, conv1D: true));
            }
            lnF = TakeLayerNorm($"{prefix}ln_f", hidden);
            lmHead = TakeHead(wte, vocab, hidden, embeddingWhenAbsent: true);
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
        var positions = LearnedPositions(wpe, startPosition, inputIds.shape[1]);
        return (Lookup(wte, inputIds) + positions).MoveToOuterDisposeScope();
    }

    protected override IReadOnlyList<IReadOnlyList<LinearWeight>> Groups(int index) => blocks[index].Groups;

    protected override BlockState Enter(int index, Tensor hidden) => new(hidden, LayerNorm(hidden, blocks[index].Ln1));

    protected override BlockState Step(int index, LinearGroup group, BlockState state, long startPosition, KvCache? cache)
    {
        var block = blocks[index];
        var (hidden, x) = (state.Residual, state.Input!);
        switch (group)
        {
            case LinearGroup.AttentionInput:
                long width = Config.HiddenSize, heads = Config.NumHeads, headDim = width / heads;
                var qkv = block.CAttn.Forward(x);
                var query = SplitHeads(qkv.narrow(-1, 0, width), heads, headDim);
                var key = SplitHeads(qkv.narrow(-1, width, width), heads, headDim);
                var value = SplitHeads(qkv.narrow(-1, 2 * width, width), heads, headDim);
                if (cache is not null) (key, value) = cache.Append(index, key, value);
                return new BlockState(hidden, Attention(query, key, value, startPosition));
            case LinearGroup.AttentionOutput:
                hidden = hidden + block.AttnCProj.Forward(x);
                return new BlockState(hidden, LayerNorm(hidden, block.Ln2));
            case LinearGroup.MlpInput:
                return new BlockState(hidden, act(block.CFc.Forward(x)));
            case LinearGroup.MlpOutput:
                return new BlockState(hidden + block.MlpCProj.Forward(x), null);
            default:
                throw new ArgumentOutOfRangeException(nameof(group), group, "a GPT-2 block has the 4 linear groups of LinearGroup");
        }
    }

    public override Tensor Head(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var logits = nn.functional.linear(LayerNorm(hidden, lnF), lmHead);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
