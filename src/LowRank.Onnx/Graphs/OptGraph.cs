using System.Globalization;
using LowRank.Models;

namespace LowRank.Onnx.Graphs;

/// <summary>
/// OPT as an ONNX graph, the same math as <c>OptModel</c>:
/// <code>
/// h = project_in(embed_tokens[input_ids]) + embed_positions[position_ids + 2]
/// per layer (do_layer_norm_before):  h += out_proj(attention(q_proj(x), k_proj(x), v_proj(x)))   x = self_attn_layer_norm(h)
///                                    h += fc2(relu(fc1(x)))                                        x = final_layer_norm(h)
/// logits = lm_head(project_out(final_layer_norm(h)))
/// </code>
/// With do_layer_norm_before = false (OPT-350m) the layer norms follow the residual additions and there is no final
/// norm. Positions come from position_ids (HF derives them from the attention mask; for unpadded input they agree).
/// </summary>
public sealed class OptGraph : DecoderGraph
{
    private const int PositionOffset = 2;
    private readonly string prefix;

    public OptGraph(ModelConfig config, IExportWeights weights, OnnxDtype dtype) : base(config, weights, dtype)
    {
        if (config.Family != ModelFamily.Opt) throw new ArgumentException($"OptGraph cannot export the {config.Family} family", nameof(config));
        if (config.HiddenSize % config.NumHeads != 0)
            throw new LrkException(ErrorCodes.BadConfig, $"hidden_size ({config.HiddenSize}) must be a multiple of num_attention_heads ({config.NumHeads})");
        if (config.HiddenAct != "relu")
            throw new LrkException(ErrorCodes.UnsupportedArchitecture, $"the ONNX export of OPT supports activation_function relu (got '{config.HiddenAct}')");
        prefix = weights.Contains("model.decoder.embed_tokens.weight") || !weights.Contains("decoder.embed_tokens.weight") ? "model.decoder" : "decoder";
    }

    public override int KvHeads => Config.NumHeads;

    public override int HeadDim => Config.HiddenSize / Config.NumHeads;

    protected override void Forward()
    {
        long hidden = Config.HiddenSize, vocab = Config.VocabSize, ffn = Config.IntermediateSize;
        long projDim = Config.WordEmbedProjDim ?? hidden;
        var preNorm = Config.LayerNormBefore;
        var embedTokens = Tensor($"{prefix}.embed_tokens.weight", vocab, projDim);
        var tokens = Embedding(embedTokens, InputIds);
        if (projDim != hidden) tokens = Graph.Op("MatMul", tokens, TransposedTensor($"{prefix}.project_in.weight", hidden, projDim));
        var positions = Embedding(Tensor($"{prefix}.embed_positions.weight", Config.MaxPositions + PositionOffset, hidden),
            Graph.Op("Add", PositionIds, Graph.Int64(PositionOffset)));
        var h = Graph.Op("Add", tokens, positions);
        for (var i = 0; i < Config.NumLayers; i++)
        {
            var p = $"{prefix}.layers.{i}";
            using var layer = Graph.Scope($"layers.{i.ToString(CultureInfo.InvariantCulture)}");
            var attnNorm = (Tensor($"{p}.self_attn_layer_norm.weight", hidden), Tensor($"{p}.self_attn_layer_norm.bias", hidden));
            var ffnNorm = (Tensor($"{p}.final_layer_norm.weight", hidden), Tensor($"{p}.final_layer_norm.bias", hidden));
            var x = preNorm ? LayerNorm(h, attnNorm.Item1, attnNorm.Item2) : h;
            var query = SplitHeads(Linear(x, $"{p}.self_attn.q_proj", hidden, hidden, bias: true), Config.NumHeads, HeadDim);
            var key = SplitHeads(Linear(x, $"{p}.self_attn.k_proj", hidden, hidden, bias: true), Config.NumHeads, HeadDim);
            var value = SplitHeads(Linear(x, $"{p}.self_attn.v_proj", hidden, hidden, bias: true), Config.NumHeads, HeadDim);
            var (keys, values) = CachedKeysValues(i, key, value);
            var attention = Attention(query, keys, values, Config.NumHeads, null);
            h = Graph.Op("Add", h, Linear(attention, $"{p}.self_attn.out_proj", hidden, hidden, bias: true));
            if (!preNorm) h = LayerNorm(h, attnNorm.Item1, attnNorm.Item2);

            x = preNorm ? LayerNorm(h, ffnNorm.Item1, ffnNorm.Item2) : h;
            var inner = Graph.Op("Relu", Linear(x, $"{p}.fc1", ffn, hidden, bias: true));
            h = Graph.Op("Add", h, Linear(inner, $"{p}.fc2", hidden, ffn, bias: true));
            if (!preNorm) h = LayerNorm(h, ffnNorm.Item1, ffnNorm.Item2);
        }
        if (preNorm && Weights.Contains($"{prefix}.final_layer_norm.weight"))
            h = LayerNorm(h, Tensor($"{prefix}.final_layer_norm.weight", hidden), Tensor($"{prefix}.final_layer_norm.bias", hidden));
        if (projDim != hidden) h = Graph.Op("MatMul", h, TransposedTensor($"{prefix}.project_out.weight", projDim, hidden));
        var head = Config.TieWordEmbeddings || !Weights.Contains("lm_head.weight") ? embedTokens : Tensor("lm_head.weight", vocab, projDim);
        Head(h, head, projDim);
    }

    /// <summary>A bias-free projection's [out, in] weight stored as [in, out] for MatMul.</summary>
    private string TransposedTensor(string name, long outFeatures, long inFeatures)
    {
        CheckShape(name, outFeatures, inFeatures);
        return Graph.Weight(name + ".T", Dtype, [inFeatures, outFeatures], () => OnnxDtypes.Transpose(Weights.Read(name), outFeatures, inFeatures));
    }
}
