using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace LowRank.Models.Llama2c;

/// <summary>
/// A llama2.c checkpoint in the legacy (v0) format, read tensor by tensor under HF LLaMA names.
/// <para>Header: 7 × int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
/// means an untied classifier follows. Then fp32 [out, in]: tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3,
/// rms_final, freq_cis_real, freq_cis_imag (unused: RoPE is recomputed), and wcls when untied.</para>
/// llama2.c rotates adjacent pairs (2i, 2i+1) of each head, HF rotates halves (i, i + hs/2): q and k rows are
/// permuted per head on load (HF convert_llama_weights_to_hf's <c>permute</c>), so the tensors are HF-ready.
/// </summary>
public sealed class Llama2cCheckpoint
{
    private const int HeaderBytes = 7 * sizeof(int);

    private readonly string path;
    private readonly Dictionary<string, Entry> entries = new(StringComparer.Ordinal);

    private sealed record Entry(long[] Shape, long Offset, long Heads);

    private Llama2cCheckpoint(string path, int[] header)
    {
        this.path = path;
        (Dim, HiddenDim, Layers, Heads, KvHeads) = (header[0], header[1], header[2], header[3], header[4]);
        SharedClassifier = header[5] > 0;
        VocabSize = Math.Abs(header[5]);
        SeqLen = header[6];
    }

    public int Dim { get; }
    public int HiddenDim { get; }
    public int Layers { get; }
    public int Heads { get; }
    public int KvHeads { get; }
    public int VocabSize { get; }
    public int SeqLen { get; }
    public bool SharedClassifier { get; }
    public int HeadSize => Dim / Heads;

    /// <summary>Tensor names (HF) and shapes, in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, long[]>> Tensors => entries.Select(e => KeyValuePair.Create(e.Key, e.Value.Shape)).ToList();

    public static Llama2cCheckpoint Open(string path)
    {
        long length;
        var header = new int[7];
        try
        {
            using var stream = File.OpenRead(path);
            length = stream.Length;
            Span<byte> bytes = stackalloc byte[HeaderBytes];
            if (stream.ReadAtLeast(bytes, HeaderBytes, throwOnEndOfStream: false) < HeaderBytes)
                throw Bad(path, $"the file has {length} bytes, fewer than the 28-byte header");
            for (var i = 0; i < 7; i++) header[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(ErrorCodes.BadCheckpoint, $"cannot read {path}: {e.Message}");
        }

        string[] fields = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];
        for (var i = 0; i < 7; i++)
        {
            var value = i == 5 ? Math.Abs((long)header[i]) : header[i];
            if (value <= 0 || value > 1 << 20) throw Bad(path, $"header field {fields[i]} = {header[i]} is out of range (is this a llama2.c v0 checkpoint?)");
        }
        var checkpoint = new Llama2cCheckpoint(path, header);
        if (checkpoint.Dim % checkpoint.Heads != 0 || checkpoint.HeadSize % 2 != 0)
            throw Bad(path, $"dim {checkpoint.Dim} does not split into {checkpoint.Heads} heads of even size");
        if (checkpoint.KvHeads > checkpoint.Heads || checkpoint.Heads % checkpoint.KvHeads != 0)
            throw Bad(path, $"n_heads {checkpoint.Heads} is not a multiple of n_kv_heads {checkpoint.KvHeads}");
        var expected = checkpoint.Layout();
        if (length != expected)
            throw Bad(path, $"the file has {length} bytes but its header (dim {checkpoint.Dim}, layers {checkpoint.Layers}, vocab {header[5]}) implies {expected}" +
                (length > expected ? " (a newer llama2.c version? only the legacy v0 format is supported)" : " (truncated?)"));
        return checkpoint;
    }

    private static LrkException Bad(string path, string why) => new(ErrorCodes.BadCheckpoint, $"{path}: {why}");

    /// <summary>Records every tensor's offset under its HF name; returns the file size the header implies.</summary>
    private long Layout()
    {
        long d = Dim, h = HiddenDim, kv = (long)KvHeads * HeadSize, v = VocabSize, l = Layers;
        var offset = (long)HeaderBytes;
        void Add(string name, long[] shape, long heads = 0)
        {
            entries[name] = new Entry(shape, offset, heads);
            offset += shape.Aggregate(1L, (a, b) => a * b) * sizeof(float);
        }
        void PerLayer(string suffix, long[] shape, long heads = 0)
        {
            for (var i = 0; i < l; i++) Add($"model.layers.{i}.{suffix}", shape, heads);
        }
        Add("model.embed_tokens.weight", [v, d]);
        PerLayer("input_layernorm.weight", [d]);
        PerLayer("self_attn.q_proj.weight", [d, d], Heads);
        PerLayer("self_attn.k_proj.weight", [kv, d], KvHeads);
        PerLayer("self_attn.v_proj.weight", [kv, d]);
        PerLayer("self_attn.o_proj.weight", [d, d]);
        PerLayer("post_attention_layernorm.weight", [d]);
        PerLayer("mlp.gate_proj.weight", [h, d]);
        PerLayer("mlp.down_proj.weight", [d, h]);
        PerLayer("mlp.up_proj.weight", [h, d]);
        Add("model.norm.weight", [d]);
        offset += 2L * SeqLen * (HeadSize / 2) * sizeof(float); // freq_cis_real, freq_cis_imag
        if (!SharedClassifier) Add("lm_head.weight", [v, d]);
        return offset;
    }

    /// <summary>Reads one tensor (fp32, CPU) by its HF name, with q/k rows already in the rotate-half order.</summary>
    public Tensor Load(string name)
    {
        if (!entries.TryGetValue(name, out var entry)) throw new LrkException(ErrorCodes.MissingTensor, $"a llama2.c checkpoint has no tensor '{name}'");
        var count = entry.Shape.Aggregate(1L, (a, b) => a * b);
        var values = new float[count];
        using (var stream = File.OpenRead(path))
        {
            stream.Position = entry.Offset;
            stream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        }
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("llama2.c checkpoints are little-endian");
        using var scope = NewDisposeScope();
        var result = tensor(values, entry.Shape, ScalarType.Float32);
        if (entry.Heads > 0)
        {
            // Per head, row 2i → i and row 2i+1 → i + hs/2 (HF convert_llama_weights_to_hf.permute).
            var columns = entry.Shape[1];
            result = result.view(entry.Heads, HeadSize / 2, 2, columns).transpose(1, 2).reshape(entry.Heads * HeadSize, columns);
        }
        return result.contiguous().MoveToOuterDisposeScope();
    }

    public WeightSource AsWeightSource() => new(entries.Keys, Load);

    /// <summary>The HF LlamaForCausalLM config.json of this checkpoint.</summary>
    public JsonObject HfConfig() => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_size"] = Dim,
        ["intermediate_size"] = HiddenDim,
        ["num_hidden_layers"] = Layers,
        ["num_attention_heads"] = Heads,
        ["num_key_value_heads"] = KvHeads,
        ["head_dim"] = HeadSize,
        ["vocab_size"] = VocabSize,
        ["max_position_embeddings"] = SeqLen,
        ["rms_norm_eps"] = 1e-5,
        ["rope_theta"] = 10000.0,
        ["hidden_act"] = "silu",
        ["tie_word_embeddings"] = SharedClassifier,
        ["attention_bias"] = false,
        ["mlp_bias"] = false,
        ["bos_token_id"] = 1,
        ["eos_token_id"] = 2,
        ["torch_dtype"] = "float32",
    };

    /// <summary>The same configuration as a <see cref="ModelConfig"/> (what ModelConfigReader makes of <see cref="HfConfig"/>).</summary>
    public ModelConfig ToModelConfig() => new()
    {
        Family = ModelFamily.Llama,
        Architecture = "LlamaForCausalLM",
        HiddenSize = Dim,
        IntermediateSize = HiddenDim,
        NumLayers = Layers,
        NumHeads = Heads,
        NumKvHeads = KvHeads,
        HeadDim = HeadSize,
        VocabSize = VocabSize,
        MaxPositions = SeqLen,
        NormEps = 1e-5,
        RopeTheta = 10000.0,
        TieWordEmbeddings = SharedClassifier,
        HiddenAct = "silu",
        BosTokenId = 1,
        EosTokenId = 2,
        Raw = HfConfig(),
    };
}
