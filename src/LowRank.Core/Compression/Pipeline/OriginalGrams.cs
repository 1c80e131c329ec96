using LowRank.Models;
using LowRank.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>How AdaSVD gathers the original model's input Grams <c>H_o</c> that whiten adaComp's start.</summary>
public enum AdaSvdOriginalPass
{
    /// <summary><see cref="Once"/> when every block's Grams fit in memory (fp32 on the compute device: 30% of a GPU's
    /// memory, a quarter of the host's on the CPU), else <see cref="PerBlock"/>.</summary>
    Auto,
    /// <summary>One pass over the original model before compressing: every block's Grams are kept, and the adaCR importance
    /// comes from the same pass. LLaMA-7B: 20.4 GiB of Grams, and no separate importance pass over the model.</summary>
    Once,
    /// <summary>A separate adaCR importance pass, then the original model's hidden states advance beside the compressed
    /// model's, one block's Grams at a time.</summary>
    PerBlock,
}

/// <summary>One block's original-model input Grams in fp32, one tensor per linear group (linears fed one input share it).</summary>
internal sealed class BlockGrams : IDisposable
{
    private readonly Dictionary<string, Tensor> byLinear = new(StringComparer.Ordinal);
    private readonly List<Tensor> owned = [];

    /// <summary>Copies <paramref name="stats"/>' Grams of <paramref name="linears"/> to fp32 on <paramref name="device"/>:
    /// half the memory of the fp64 sums, and below the tensor-core Grams' 2e-5 error (<see cref="GramPrecision"/>) by
    /// orders of magnitude. Both ways of gathering them round the same way, so they give the same factors.</summary>
    public static BlockGrams From(LinearStatistics stats, IEnumerable<LinearWeight> linears, Device device)
    {
        var grams = new BlockGrams();
        var copies = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var linear in linears)
        {
            var gram = stats.Gram(linear.Name);
            if (!copies.TryGetValue(gram, out var copy))
            {
                copy = gram.to(ScalarType.Float32, device).DetachFromDisposeScope();
                copies[gram] = copy;
                grams.owned.Add(copy);
            }
            grams.byLinear[linear.Name] = copy;
        }
        return grams;
    }

    /// <summary>The Gram of <paramref name="linear"/>'s input (the same tensor for linears sharing it).</summary>
    public Tensor Of(string linear) => byLinear.TryGetValue(linear, out var gram) ? gram
        : throw new InvalidOperationException($"no original-model Gram was kept for {linear}");

    public long Bytes => owned.Sum(t => t.NumberOfElements * t.ElementSize);

    public void Dispose()
    {
        foreach (var tensor in owned) tensor.Dispose();
        owned.Clear();
        byLinear.Clear();
    }
}

/// <summary>Every block's <see cref="BlockGrams"/> from AdaSVD's single original-model pass, handed out once each.</summary>
internal sealed class OriginalGrams(int blocks) : IDisposable
{
    private readonly BlockGrams?[] perBlock = new BlockGrams?[blocks];

    private const double DeviceShare = 0.3;
    private const double HostShare = 0.25;

    public void Add(int block, BlockGrams grams) => perBlock[block] = grams;

    /// <summary>Block <paramref name="block"/>'s Grams; the caller owns (disposes) them, so memory shrinks as blocks are done.</summary>
    public BlockGrams Take(int block)
    {
        var grams = perBlock[block] ?? throw new InvalidOperationException($"block {block}'s original Grams were not kept or were taken already");
        perBlock[block] = null;
        return grams;
    }

    /// <summary>Whether to keep every block's Grams (<see cref="AdaSvdOriginalPass"/>), with the reason.</summary>
    public static bool Wanted(CompressionRun run, IStagedDecoder model, out string reason)
    {
        reason = Reason(run, model);
        return run.Options.AdaSvdOriginalPass switch
        {
            AdaSvdOriginalPass.Once => true,
            AdaSvdOriginalPass.PerBlock => false,
            _ => Bytes(model) <= Budget(run.Device),
        };
    }

    public static string Reason(CompressionRun run, IStagedDecoder model)
    {
        var gib = Bytes(model) / (double)(1L << 30);
        var budget = Budget(run.Device) / (double)(1L << 30);
        return run.Options.AdaSvdOriginalPass == AdaSvdOriginalPass.Auto
            ? $"the Grams take {gib:F1} GiB of a {budget:F1} GiB budget on {run.Device.type}"
            : $"option {run.Options.AdaSvdOriginalPass} ({gib:F1} GiB of Grams)";
    }

    /// <summary>fp32 bytes of every block's Grams: one n² per linear group.</summary>
    private static long Bytes(IStagedDecoder model) =>
        Enumerable.Range(0, model.BlockCount).Sum(b => model.LinearGroups(b).Sum(g => g[0].InFeatures * g[0].InFeatures * 4L));

    private static long Budget(Device device)
    {
        if (device.type == DeviceType.CUDA) return (long)(DeviceShare * (CudaNative.TotalMemoryBytes(device) ?? 0));
        return (long)(HostShare * GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
    }

    public void Dispose()
    {
        foreach (var grams in perBlock) grams?.Dispose();
        Array.Clear(perBlock);
    }
}
