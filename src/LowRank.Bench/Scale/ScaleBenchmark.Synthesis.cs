using System.Text.Json.Nodes;
using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Bench;

/// <summary>The scale benchmark's model: a LLaMA-shaped fp16 checkpoint of seeded random weights, written one tensor at a
/// time, and its random calibration token ids.</summary>
public static partial class ScaleBenchmark
{
    /// <summary>HF LlamaConfig fields for the shape (transformers can load the folder too).</summary>
    public static JsonObject ConfigFor(ScaleShape shape, int layers, int seqLen) => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_size"] = shape.Hidden,
        ["intermediate_size"] = shape.Ffn,
        ["num_hidden_layers"] = layers,
        ["num_attention_heads"] = shape.Heads,
        ["num_key_value_heads"] = shape.KvHeads,
        ["vocab_size"] = shape.Vocab,
        ["max_position_embeddings"] = Math.Max(4096, seqLen),
        ["rms_norm_eps"] = 1e-5,
        ["rope_theta"] = 10000.0,
        ["hidden_act"] = "silu",
        ["tie_word_embeddings"] = false,
        ["bos_token_id"] = 1,
        ["eos_token_id"] = 2,
        ["torch_dtype"] = "float16",
    };

    /// <summary>The checkpoint's tensors in file order, each generated when written (on <paramref name="device"/>):
    /// seeded N(0, 0.02²) fp16 for embeddings and linears, ones for the norms.</summary>
    public static IReadOnlyList<TensorSpec> Specs(ScaleShape shape, int layers, Device device, int seed)
    {
        var d = (long)shape.Hidden;
        var kv = d / shape.Heads * shape.KvHeads;
        var specs = new List<TensorSpec> { Random("model.embed_tokens.weight", [shape.Vocab, d]) };
        for (var i = 0; i < layers; i++)
        {
            var p = $"model.layers.{i}.";
            specs.Add(Ones(p + "input_layernorm.weight", d));
            specs.Add(Random(p + "self_attn.q_proj.weight", [d, d]));
            specs.Add(Random(p + "self_attn.k_proj.weight", [kv, d]));
            specs.Add(Random(p + "self_attn.v_proj.weight", [kv, d]));
            specs.Add(Random(p + "self_attn.o_proj.weight", [d, d]));
            specs.Add(Ones(p + "post_attention_layernorm.weight", d));
            specs.Add(Random(p + "mlp.gate_proj.weight", [shape.Ffn, d]));
            specs.Add(Random(p + "mlp.up_proj.weight", [shape.Ffn, d]));
            specs.Add(Random(p + "mlp.down_proj.weight", [d, shape.Ffn]));
        }
        specs.Add(Ones("model.norm.weight", d));
        specs.Add(Random("lm_head.weight", [shape.Vocab, d]));
        return specs;

        TensorSpec Random(string name, long[] size) => new(name, ScalarType.Float16, size, () =>
        {
            if (device.type == DeviceType.CUDA)
            {
                // TorchSharp's Generator(seed, device) makes a CPU generator, which CUDA randn rejects: seed the
                // device's default generator per tensor instead (same determinism; nothing else draws from it here).
                lock (CudaSeedGate)
                {
                    cuda.manual_seed(SeedOf(name, seed));
                    return (randn(size, ScalarType.Float32, device) * 0.02).to(ScalarType.Float16);
                }
            }
            using var generator = new Generator((ulong)SeedOf(name, seed), device);
            return (randn(size, ScalarType.Float32, device, generator: generator) * 0.02).to(ScalarType.Float16);
        });
        TensorSpec Ones(string name, long size) => new(name, ScalarType.Float16, [size], () => ones(size, ScalarType.Float16, device));
    }

    private static readonly object CudaSeedGate = new();

    /// <summary>Writes config.json and fp16 safetensors shards, one tensor generated at a time.</summary>
    public static void Synthesize(string folder, IReadOnlyList<TensorSpec> specs, JsonObject config)
    {
        var temp = folder + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        File.WriteAllText(Path.Combine(temp, "config.json"), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        SafeTensorsWriter.WriteModel(temp, specs);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        Directory.Move(temp, folder);
    }

    private static long SeedOf(string name, int seed)
    {
        // FNV-1a: a stable per-tensor seed (string.GetHashCode is randomised per process).
        var hash = 14695981039346656037UL ^ (ulong)seed;
        foreach (var c in name)
        {
            hash ^= c;
            hash *= 1099511628211UL;
        }
        return (long)(hash & 0x7fffffffffffffffUL);
    }

    public static Tensor CalibrationIds(int samples, int seqLen, int vocab, int seed)
    {
        using var generator = new Generator((ulong)seed, CPU);
        var ids = randint(3, vocab, [samples, seqLen], dtype: ScalarType.Int64, generator: generator);
        ids[.., 0] = tensor(1L);
        return ids;
    }
}
