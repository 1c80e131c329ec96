using LowRank.Artifacts;
using LowRank.Models;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>The source checkpoint's dense weights, read one linear at a time: the target quantized factors are fitted
/// to (<see cref="Compressor.QuantizeFactors"/>) after the model in memory holds only factors.</summary>
public sealed class OriginalWeights : IDisposable
{
    private readonly TensorStore store;
    private readonly ModelConfig config;

    private OriginalWeights(TensorStore store, ModelConfig config)
    {
        this.store = store;
        this.config = config;
    }

    /// <summary>The weights of a safetensors folder, or null when <paramref name="folder"/> is none.</summary>
    public static OriginalWeights? TryOpen(string folder, ModelConfig config) =>
        Directory.Exists(folder) ? new OriginalWeights(TensorStore.Open(folder), config) : null;

    /// <summary>The original weight [out, in] of <paramref name="linear"/> (GPT-2's Conv1D transposed), or null when the
    /// source does not hold it densely. A new tensor.</summary>
    public Tensor? Load(LinearWeight linear)
    {
        var name = linear.Name + ArtifactFormat.WeightSuffix;
        if (!store.Contains(name)) return null;
        var weight = store.Load(name);
        return ArtifactFormat.IsConv1D(config.Family, linear.Name) ? weight.t() : weight;
    }

    public void Dispose() => store.Dispose();
}
