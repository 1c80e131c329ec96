using System.Globalization;
using LowRank.Models;

namespace LowRank.Onnx.Graphs;

/// <summary>
/// GPT-2 as an ONNX graph, the same math as <c>Gpt2Model</c>:
/// <code>
/// h = wte[input_ids] + wpe[position_ids]
/// per block:  q, k, v = split(attn.c_attn(ln_1(h)));   h += attn.c_proj(attention(q, k, v))
///             h += mlp.c_proj(gelu_new(mlp.c_fc(ln_2(h))))
/// logits = lm_head(ln_f(h))        (lm_head = wte)
/// </code>
/// Conv1D weights are [in, out] already, the layout MatMul takes; their factors are stored like every family's.
/// gelu_new is written out: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
/// </summary>
public sealed class Gpt2Graph : DecoderGraph
{
    private readonly string prefix;

    public Gpt2Graph(ModelConfig config, IExportWeights weights, OnnxDtype dtype) : base(config, weights, dtype)
    {
        if (config.Family != ModelFamily.Gpt2) throw new ArgumentException($"Gpt2Graph cannot export the {config.Family} family", nameof(config));
        if (config.HiddenSize % config.NumHeads != 0)
            throw new LrkException(ErrorCodes.BadConfig, $"n_embd ({config.HiddenSize}) must be a multiple of n_head ({config.NumHeads})");
        if (config.HiddenAct is not ("gelu_new" or "gelu_pytorch_tanh" or "gelu_fast"))
            throw new LrkException(ErrorCodes.UnsupportedArchitecture, $"the ONNX export of GPT-2 supports activation_function gelu_new (got '{config.HiddenAct}')");
        prefix = weights.Contains("wte.weight") && !weights.Contains("transformer.wte.weight") ? "" : "transformer.";
    }

    public override int KvHeads => Config.NumHeads;

    public override int HeadDim => Config.HiddenSize / Config.NumHeads;

    protected override void Forward()
    {
        long width = Config.HiddenSize, vocab = Config.VocabSize, inner = Config.IntermediateSize;
        var wte = Tensor($"{prefix}wte.weight", vocab, width);
        var wpe = Tensor($"{prefix}wpe.weight", Config.MaxPositions, width);
        var h = Graph.Op("Add", Embedding(wte, InputIds), Embedding(wpe, PositionIds));
        for (var i = 0; i < Config.NumLayers; i++)
        {
            var p = $"{prefix}h.{i}";
            using var block = Graph.Scope($"h.{i.ToString(CultureInfo.InvariantCulture)}");
            var x = LayerNorm(h, Tensor($"{p}.ln_1.weight", width), Tensor($"{p}.ln_1.bias", width));
            var qkv = Linear(x, $"{p}.attn.c_attn", 3 * width, width, bias: true, conv1D: true);
            var parts = Graph.Node("Split", [qkv, Graph.Int64s(width, width, width)], 3, attributes: [OnnxGraph.Attribute("axis", -1L)]);
            var query = SplitHeads(parts[0], Config.NumHeads, HeadDim);
            var (keys, values) = CachedKeysValues(i, SplitHeads(parts[1], Config.NumHeads, HeadDim), SplitHeads(parts[2], Config.NumHeads, HeadDim));
            var attention = Attention(query, keys, values, Config.NumHeads, null);
            h = Graph.Op("Add", h, Linear(attention, $"{p}.attn.c_proj", width, width, bias: true, conv1D: true));

            x = LayerNorm(h, Tensor($"{p}.ln_2.weight", width), Tensor($"{p}.ln_2.bias", width));
            var activated = GeluNew(Linear(x, $"{p}.mlp.c_fc", inner, width, bias: true, conv1D: true));
            h = Graph.Op("Add", h, Linear(activated, $"{p}.mlp.c_proj", width, inner, bias: true, conv1D: true));
        }
        h = LayerNorm(h, Tensor($"{prefix}ln_f.weight", width), Tensor($"{prefix}ln_f.bias", width));
        Head(h, Config.TieWordEmbeddings || !Weights.Contains("lm_head.weight") ? wte : Tensor("lm_head.weight", vocab, width), width);
    }

    /// <summary>HF NewGELUActivation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    private string GeluNew(string x)
    {
        using var scope = Graph.Scope("gelu_new");
        var cube = Graph.Op("Mul", Graph.Op("Mul", x, x), x);
        var inner = Graph.Op("Mul", Graph.Op("Add", x, Graph.Op("Mul", cube, Graph.Scalar(0.044715, Dtype))), Graph.Scalar(Math.Sqrt(2 / Math.PI), Dtype));
        var gate = Graph.Op("Add", Graph.Op("Tanh", inner), Graph.Scalar(1, Dtype));
        return Graph.Op("Mul", Graph.Op("Mul", x, gate), Graph.Scalar(0.5, Dtype));
    }
}
