using LowRank.Models;

namespace LowRank.Onnx.Graphs;

/// <summary>One exported linear: factorised into two MatMuls of inner dimension <see cref="Rank"/>, or dense; stored as
/// integers in <see cref="Format"/> (int8, int4-g128, …) when the artifact quantized it.</summary>
public sealed record ExportedLinear(string Name, long OutFeatures, long InFeatures, long? Rank, string? Format = null)
{
    public bool IsFactorized => Rank is not null;
}

/// <summary>
/// What every family's graph shares: the decoder interface ONNX Runtime GenAI drives, the causal mask, attention with
/// a KV cache, and linears that stay factorised.
/// <para>
/// Inputs: <c>input_ids</c> [batch, seq] int64, <c>attention_mask</c> [batch, past + seq] int64 (1 = attend; 0 = padding),
/// <c>position_ids</c> [batch, seq] int64, and per block <c>past_key_values.{i}.key</c>/<c>.value</c>
/// [batch, kv_heads, past, head_dim] (past = 0 on the first call). Outputs: <c>logits</c> [batch, seq, vocab] fp32 and
/// <c>present.{i}.key</c>/<c>.value</c> [batch, kv_heads, past + seq, head_dim]: the past with this call's keys and
/// values (after RoPE) appended, to feed back as the next call's past. A query at cache index past + j attends to key
/// indices ≤ past + j whose attention_mask is 1 (and, with a sliding window w, &gt; past + j − w), as the TorchSharp
/// forward does; positions for RoPE and learned position tables come from position_ids.
/// </para>
/// <para>
/// A linear <c>y = W x + b</c> is <c>MatMul(x, Wᵀ)</c>; a factorised one (<c>W ≈ A·B</c>, A [out, k], B [k, in]) is
/// <c>MatMul(MatMul(x, Bᵀ), Aᵀ)</c>, so the graph stores and multiplies k·(in + out) weights, never in·out. Weights are
/// stored transposed (<c>&lt;linear&gt;.lowrank_B.weight.T</c> [in, k], <c>&lt;linear&gt;.lowrank_A.weight.T</c> [k, out],
/// <c>&lt;linear&gt;.weight.T</c> [in, out]; GPT-2's Conv1D <c>&lt;linear&gt;.weight</c> is [in, out] already).
/// </para>
/// </summary>
public abstract partial class DecoderGraph
{
    public const string InputIds = "input_ids";
    public const string AttentionMask = "attention_mask";
    public const string PositionIds = "position_ids";
    public const string Logits = "logits";
    public const string PastKeyFormat = "past_key_values.%d.key";
    public const string PastValueFormat = "past_key_values.%d.value";
    public const string PresentKeyFormat = "present.%d.key";
    public const string PresentValueFormat = "present.%d.value";

    private readonly Dictionary<int, string> masks = [];
    private readonly List<ExportedLinear> linears = [];
    private string? pastLength;
    private string? totalLength;

    protected DecoderGraph(ModelConfig config, IExportWeights weights, OnnxDtype dtype)
    {
        Config = config;
        Weights = weights;
        Dtype = dtype;
        Graph = new OnnxGraph(config.Architecture);
    }

    public ModelConfig Config { get; }

    public OnnxGraph Graph { get; }

    /// <summary>The dtype of activations, weights and the KV cache (logits are always fp32).</summary>
    public OnnxDtype Dtype { get; }

    protected IExportWeights Weights { get; }

    /// <summary>Every block linear in the graph, in order, with its rank when factorised.</summary>
    public IReadOnlyList<ExportedLinear> Linears => linears;

    /// <summary>Key/value heads and their width, as the KV cache stores them.</summary>
    public abstract int KvHeads { get; }

    public abstract int HeadDim { get; }

    public static string PastKey(int block) => PastKeyFormat.Replace("%d", block.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

    public static string PastValue(int block) => PastValueFormat.Replace("%d", block.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

    public static string PresentKey(int block) => PresentKeyFormat.Replace("%d", block.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

    public static string PresentValue(int block) => PresentValueFormat.Replace("%d", block.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

    /// <summary>Builds the whole graph: the interface, then the family's forward pass.</summary>
    public OnnxGraph Build()
    {
        DeclareInterface();
        using (Graph.Scope("model")) Forward();
        return Graph;
    }

    /// <summary>The family's forward pass: from <see cref="InputIds"/> to the output named <see cref="Logits"/> (fp32),
    /// writing each block's present keys and values through <see cref="CachedKeysValues"/>.</summary>
    protected abstract void Forward();

    private void DeclareInterface()
    {
        Graph.Input(InputIds, OnnxDtype.Int64, "batch_size", "sequence_length");
        Graph.Input(AttentionMask, OnnxDtype.Int64, "batch_size", "total_sequence_length");
        Graph.Input(PositionIds, OnnxDtype.Int64, "batch_size", "sequence_length");
        for (var i = 0; i < Config.NumLayers; i++)
        {
            Graph.Input(PastKey(i), Dtype, "batch_size", KvHeads, "past_sequence_length", HeadDim);
            Graph.Input(PastValue(i), Dtype, "batch_size", KvHeads, "past_sequence_length", HeadDim);
        }
        Graph.Output(Logits, OnnxDtype.Float, "batch_size", "sequence_length", Config.VocabSize);
        for (var i = 0; i < Config.NumLayers; i++)
        {
            Graph.Output(PresentKey(i), Dtype, "batch_size", KvHeads, "total_sequence_length", HeadDim);
            Graph.Output(PresentValue(i), Dtype, "batch_size", KvHeads, "total_sequence_length", HeadDim);
        }
    }

    // ---- building blocks --------------------------------------------------------------------------------------

    /// <summary>A tensor of the checkpoint as an initializer in the graph dtype, under its checkpoint name.</summary>
    protected string Tensor(string name, params long[] shape)
    {
        CheckShape(name, shape);
        return Graph.Weight(name, Dtype, shape, () => Weights.Read(name));
    }

    /// <summary>Token embedding lookup: ids [batch, seq] → [batch, seq, dim].</summary>
    protected string Embedding(string table, string ids) => Graph.Op("Gather", table, ids);

    /// <summary>
    /// The linear <paramref name="name"/>: dense (<c>name.weight</c>, [out, in], or [in, out] for a Conv1D) or factorised
    /// (<c>name.lowrank_A.weight</c> [out, k], <c>name.lowrank_B.weight</c> [k, in]), plus <c>name.bias</c>.
    /// </summary>
    protected string Linear(string x, string name, long outFeatures, long inFeatures, bool bias, bool conv1D = false)
    {
        using var scope = Graph.Scope(ScopeName(name));
        string y;
        var a = name + DecoderModel.FactorASuffix;
        var b = name + DecoderModel.FactorBSuffix;
        if (QuantizedLinears.TryGetValue(name, out var quantized))
        {
            y = QuantizedLinear(x, name, quantized, outFeatures, inFeatures);
        }
        else if (Weights.Contains(name + ".weight"))
        {
            string weight;
            if (conv1D)
            {
                CheckShape(name + ".weight", inFeatures, outFeatures);
                weight = Graph.Weight(name + ".weight", Dtype, [inFeatures, outFeatures], () => Weights.Read(name + ".weight"));
            }
            else
            {
                CheckShape(name + ".weight", outFeatures, inFeatures);
                weight = Graph.Weight(name + ".weight.T", Dtype, [inFeatures, outFeatures],
                    () => OnnxDtypes.Transpose(Weights.Read(name + ".weight"), outFeatures, inFeatures));
            }
            y = Graph.Op("MatMul", x, weight);
            linears.Add(new ExportedLinear(name, outFeatures, inFeatures, null));
        }
        else if (Weights.Contains(a) && Weights.Contains(b))
        {
            var rank = Weights.Shape(a) is [var rows, var k] && rows == outFeatures ? k : -1;
            if (rank <= 0) throw Mismatch(a, Weights.Shape(a), $"[{outFeatures}, k]");
            CheckShape(b, rank, inFeatures);
            var bT = Graph.Weight(b + ".T", Dtype, [inFeatures, rank], () => OnnxDtypes.Transpose(Weights.Read(b), rank, inFeatures));
            var aT = Graph.Weight(a + ".T", Dtype, [rank, outFeatures], () => OnnxDtypes.Transpose(Weights.Read(a), outFeatures, rank));
            y = Graph.Op("MatMul", Graph.Op("MatMul", x, bT), aT);
            linears.Add(new ExportedLinear(name, outFeatures, inFeatures, rank));
        }
        else
        {
            throw new LrkException(ErrorCodes.MissingTensor,
                $"the checkpoint has neither '{name}.weight' nor the factors '{a}' and '{b}'");
        }
        return bias ? Graph.Op("Add", y, Tensor(name + ".bias", outFeatures)) : y;
    }

    /// <summary>The LM head against a [vocab, hidden] table (lm_head.weight, or the tied embedding without a copy):
    /// Gemm with transB on the flattened hidden states, then back to [batch, seq, vocab] in fp32.</summary>
    protected void Head(string hidden, string table, long hiddenSize)
    {
        using var scope = Graph.Scope("lm_head");
        var flat = Graph.Op("Reshape", hidden, Graph.Int64s(-1, hiddenSize));
        var product = Graph.Node("Gemm", [flat, table], attributes: [OnnxGraph.Attribute("transB", 1L)]);
        var batchSeq = Graph.Node("Slice", [Graph.Op("Shape", hidden), Graph.Int64s(0), Graph.Int64s(2)]);
        var shape = Graph.Node("Concat", [batchSeq, Graph.Int64s(Config.VocabSize)], attributes: [OnnxGraph.Attribute("axis", 0L)]);
        if (Dtype == OnnxDtype.Float)
        {
            Graph.Node("Reshape", [product, shape], Logits);
        }
        else
        {
            var logits = Graph.Op("Reshape", product, shape);
            Graph.Node("Cast", [logits], Logits, [OnnxGraph.Attribute("to", (long)OnnxDtype.Float)]);
        }
    }

    /// <summary>LayerNorm over the last axis with weight and bias (ONNX LayerNormalization, opset 17).</summary>
    protected string LayerNorm(string x, string weight, string bias) =>
        Graph.Node("LayerNormalization", [x, weight, bias], attributes: [OnnxGraph.Attribute("axis", -1L), OnnxGraph.Attribute("epsilon", (float)Config.NormEps)]);

    /// <summary>[batch, seq, heads·d] → [batch, heads, seq, d].</summary>
    protected string SplitHeads(string x, long heads, long headDim)
    {
        var split = Graph.Op("Reshape", x, Graph.Int64s(0, 0, heads, headDim));
        return Graph.Node("Transpose", [split], attributes: [OnnxGraph.Attribute("perm", 0L, 2L, 1L, 3L)]);
    }

    /// <summary>Appends this call's keys and values to block <paramref name="block"/>'s past along the sequence axis;
    /// the results are the graph outputs present.{block}.key/value.</summary>
    protected (string Keys, string Values) CachedKeysValues(int block, string keys, string values)
    {
        var axis = OnnxGraph.Attribute("axis", 2L);
        var allKeys = Graph.Node("Concat", [PastKey(block), keys], PresentKey(block), [axis]);
        var allValues = Graph.Node("Concat", [PastValue(block), values], PresentValue(block), [axis]);
        return (allKeys, allValues);
    }

    /// <summary>
    /// Scaled dot-product attention of <paramref name="query"/> [batch, heads, seq, d] against all keys/values
    /// [batch, kv_heads, total, d] under the causal mask (with <paramref name="slidingWindow"/>); grouped-query heads
    /// repeat each key/value head for heads/kv_heads consecutive query heads (HF repeat_kv). Scale 1/√d; the softmax
    /// runs in fp32. Returns [batch, seq, heads·d].
    /// </summary>
    protected string Attention(string query, string keys, string values, int heads, int? slidingWindow)
    {
        using var scope = Graph.Scope("attention");
        var groups = heads / KvHeads;
        if (groups > 1)
        {
            keys = RepeatKv(keys, groups, heads);
            values = RepeatKv(values, groups, heads);
        }
        var keysT = Graph.Node("Transpose", [keys], attributes: [OnnxGraph.Attribute("perm", 0L, 1L, 3L, 2L)]);
        var scores = Graph.Op("MatMul", query, keysT);
        if (Dtype != OnnxDtype.Float) scores = Cast(scores, OnnxDtype.Float);
        scores = Graph.Op("Mul", scores, Graph.Scalar(1.0 / Math.Sqrt(HeadDim), OnnxDtype.Float));
        scores = Graph.Op("Where", Mask(slidingWindow), scores, Graph.Scalar(float.MinValue, OnnxDtype.Float));
        var probabilities = Graph.Node("Softmax", [scores], attributes: [OnnxGraph.Attribute("axis", -1L)]);
        if (Dtype != OnnxDtype.Float) probabilities = Cast(probabilities, Dtype);
        var context = Graph.Op("MatMul", probabilities, values);
        var merged = Graph.Node("Transpose", [context], attributes: [OnnxGraph.Attribute("perm", 0L, 2L, 1L, 3L)]);
        return Graph.Op("Reshape", merged, Graph.Int64s(0, 0, (long)heads * HeadDim));
    }

    /// <summary>[batch, kv, total, d] → [batch, kv·groups, total, d], each kv head repeated for its group of query heads.</summary>
    private string RepeatKv(string x, int groups, int heads)
    {
        var expanded = Graph.Op("Expand", Graph.Op("Unsqueeze", x, Graph.Int64s(2)), Graph.Int64s(1, 1, groups, 1, 1));
        return Graph.Op("Reshape", expanded, Graph.Int64s(0, heads, -1, HeadDim));
    }

    protected string Cast(string x, OnnxDtype to) => Graph.Node("Cast", [x], attributes: [OnnxGraph.Attribute("to", (long)to)]);

    /// <summary>past_sequence_length as an int64 scalar (total from attention_mask minus this call's length).</summary>
    protected string PastLength()
    {
        if (pastLength is not null) return pastLength;
        using var scope = Graph.Scope("positions");
        var seq = Graph.Op("Gather", Graph.Op("Shape", InputIds), Graph.Int64(1));
        totalLength = Graph.Op("Gather", Graph.Op("Shape", AttentionMask), Graph.Int64(1));
        pastLength = Graph.Op("Sub", totalLength, seq);
        return pastLength;
    }

    /// <summary>
    /// The boolean mask [batch, 1, seq, total]: key index ≤ query index (= past + j), key not padding, and with a
    /// window w key index &gt; query index − w. Built once per distinct window.
    /// </summary>
    private string Mask(int? slidingWindow)
    {
        var key = slidingWindow ?? 0;
        if (masks.TryGetValue(key, out var existing)) return existing;
        using var scope = Graph.Scope(slidingWindow is null ? "causal_mask" : $"sliding_mask_{slidingWindow}");
        var past = PastLength();
        var one = Graph.Int64(1);
        var queryIndex = Graph.Op("Unsqueeze", Graph.Op("Range", past, totalLength!, one), Graph.Int64s(1));
        var keyIndex = Graph.Op("Unsqueeze", Graph.Op("Range", Graph.Int64(0), totalLength!, one), Graph.Int64s(0));
        var allowed = Graph.Op("LessOrEqual", keyIndex, queryIndex);
        if (slidingWindow is { } window)
            allowed = Graph.Op("And", allowed, Graph.Op("Greater", keyIndex, Graph.Op("Sub", queryIndex, Graph.Int64(window))));
        var notPadding = Graph.Op("Unsqueeze", Cast(AttentionMask, OnnxDtype.Bool), Graph.Int64s(1, 2));
        return masks[key] = Graph.Op("And", allowed, notPadding);
    }

    /// <summary>A linear's name inside its block's scope: <c>self_attn.q_proj</c> of <c>model.layers.0.self_attn.q_proj</c>.</summary>
    private static string ScopeName(string checkpointName)
    {
        var parts = checkpointName.Split('.');
        var block = Array.FindIndex(parts, p => p is "layers" or "h");
        return block >= 0 && block + 2 < parts.Length ? string.Join('.', parts[(block + 2)..]) : checkpointName;
    }

    protected void CheckShape(string name, params long[] shape)
    {
        if (!Weights.Contains(name)) throw new LrkException(ErrorCodes.MissingTensor, $"the checkpoint has no tensor '{name}' ({Config.Architecture} needs it)");
        var actual = Weights.Shape(name);
        if (!actual.SequenceEqual(shape)) throw Mismatch(name, actual, "[" + string.Join(", ", shape) + "]");
    }

    private static LrkException Mismatch(string name, long[] actual, string expected) =>
        new(ErrorCodes.BadCheckpoint, $"tensor '{name}' has shape [{string.Join(", ", actual)}] but the config implies {expected}");
}
