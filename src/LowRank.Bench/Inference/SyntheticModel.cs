using LowRank.Compression;
using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Bench.Inference;

/// <summary>
/// A LLaMA-shaped checkpoint with random weights (N(0, 0.02²), ones for the norms) for speed and memory
/// measurements: dense, or with every block linear stored as factors of the rank a ratio gives
/// (k = ⌊m·n·(1 − ratio)/(m + n)⌋, rounded down to a multiple when asked), as a compressed artifact stores them.
/// </summary>
public static class SyntheticModel
{
    /// <summary>Writes the folder (config.json + safetensors) and returns the achieved ratio over the block linears.</summary>
    public static double Write(string folder, ScaleShape shape, int layers, double? ratio, int rankMultiple, ScalarType dtype)
    {
        var config = ScaleBenchmark.ConfigFor(shape, layers, 2048);
        config["torch_dtype"] = dtype == ScalarType.Float16 ? "float16" : dtype == ScalarType.BFloat16 ? "bfloat16" : "float32";
        long d = shape.Hidden, kv = d / shape.Heads * shape.KvHeads, ffn = shape.Ffn;
        var specs = new List<TensorSpec> { Random("model.embed_tokens.weight", [shape.Vocab, d]) };
        long before = 0, after = 0;
        for (var i = 0; i < layers; i++)
        {
            var p = $"model.layers.{i}.";
            specs.Add(Ones(p + "input_layernorm.weight", d));
            Linear(p + "self_attn.q_proj", d, d);
            Linear(p + "self_attn.k_proj", kv, d);
            Linear(p + "self_attn.v_proj", kv, d);
            Linear(p + "self_attn.o_proj", d, d);
            specs.Add(Ones(p + "post_attention_layernorm.weight", d));
            Linear(p + "mlp.gate_proj", ffn, d);
            Linear(p + "mlp.up_proj", ffn, d);
            Linear(p + "mlp.down_proj", d, ffn);
        }
        specs.Add(Ones("model.norm.weight", d));
        specs.Add(Random("lm_head.weight", [shape.Vocab, d]));
        ScaleBenchmark.Synthesize(folder, specs, config);
        return 1.0 - (double)after / before;

        void Linear(string name, long outFeatures, long inFeatures)
        {
            before += outFeatures * inFeatures;
            if (ratio is not { } r)
            {
                after += outFeatures * inFeatures;
                specs.Add(Random(name + ".weight", [outFeatures, inFeatures]));
                return;
            }
            var rank = RatioMath.RankFor(outFeatures, inFeatures, RatioMath.Retention(r));
            if (rankMultiple > 1) rank = Math.Max(rankMultiple, rank / rankMultiple * rankMultiple);
            after += rank * (outFeatures + inFeatures);
            specs.Add(Random(name + DecoderModel.FactorASuffix, [outFeatures, rank]));
            specs.Add(Random(name + DecoderModel.FactorBSuffix, [rank, inFeatures]));
        }

        TensorSpec Random(string name, long[] size) => new(name, dtype, size, () =>
        {
            using var generator = new Generator((ulong)(uint)StringComparer.Ordinal.GetHashCode(name) + 7, CPU);
            return (randn(size, ScalarType.Float32, CPU, generator: generator) * 0.02).to(dtype);
        });

        TensorSpec Ones(string name, long size) => new(name, dtype, [size], () => ones(size, dtype));
    }
}
