using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// Accumulates, over the calibration batches of one block, what the methods need from each linear's inputs:
/// the Gram <c>H = X Xᵀ</c> (fp32 products per batch, summed in fp64), optionally the cross Gram <c>C = X_o Xᵀ</c>
/// against inputs recorded from a run on the original model's hidden states, and optionally ASVD's channel
/// |x| means. Linears fed the very same input tensor in a run (q/k/v, gate/up) share one accumulator, so each
/// Gram is computed once. Bucketing (AdaSVD stack-of-batch) averages groups of consecutive samples first.
/// </summary>
internal sealed class LinearStatistics : IDisposable
{
    private readonly Dictionary<string, Tensor> grams = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> crosses = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> targets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ChannelAbsMeanAccumulator> absMeans = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> owner = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> recorded = new(StringComparer.Ordinal);
    private readonly Func<string, bool> wanted;
    private readonly int bucketSize;
    private readonly bool collectGram;
    private readonly bool collectAbsMean;
    private readonly bool tf32;
    private Tensor? lastInput;
    private string? lastOwner;

    /// <param name="wanted">Which linears (by name) to collect for.</param>
    /// <param name="tf32">Gram products of half-precision inputs on CUDA TF32 tensor cores (<see cref="CompressionOptions.GramTf32"/>).</param>
    public LinearStatistics(Func<string, bool> wanted, bool gram = true, bool absMean = false, int bucketSize = 1, bool tf32 = false)
    {
        this.tf32 = tf32;
        this.wanted = wanted;
        this.bucketSize = bucketSize;
        collectGram = gram;
        collectAbsMean = absMean;
    }

    /// <summary>Observer for a run on the ORIGINAL model's hidden states: records each wanted linear's input (one batch)
    /// for the cross Gram of the next <see cref="Observer"/> run.</summary>
    public LinearInputObserver Recorder()
    {
        ResetRun();
        foreach (var tensor in recorded.Values) tensor.Dispose();
        recorded.Clear();
        return (linear, input) =>
        {
            if (!wanted(linear.Name)) return;
            if (ReferenceEquals(input, lastInput))
            {
                recorded[linear.Name] = recorded[lastOwner!].alias().DetachFromDisposeScope();
                return;
            }
            lastInput = input;
            lastOwner = linear.Name;
            using var scope = NewDisposeScope();
            recorded[linear.Name] = Flatten(input).clone().DetachFromDisposeScope();
        };
    }

    /// <summary>Observer accumulating the statistics of one batch (and, after a <see cref="Recorder"/> run on the same
    /// samples, the cross Gram).</summary>
    public LinearInputObserver Observer()
    {
        ResetRun();
        return (linear, input) =>
        {
            if (!wanted(linear.Name)) return;
            // Linears fed the same tensor share statistics; in a paired run they also shared the recorded original
            // input (the original block feeds them one tensor too), so the cross Gram is shared as well.
            if (ReferenceEquals(input, lastInput))
            {
                owner[linear.Name] = lastOwner!;
                return;
            }
            lastInput = input;
            lastOwner = linear.Name;
            owner[linear.Name] = linear.Name;
            using var scope = NewDisposeScope();
            var x = Flatten(input);
            // Bucket means are no longer fp16 values: only unaveraged half inputs take the TF32 path.
            var half = tf32 && IsHalf(input.dtype) && bucketSize == 1;
            if (collectGram) Accumulate(grams, linear.Name, x, x, half);
            if (recorded.TryGetValue(linear.Name, out var original))
            {
                Accumulate(crosses, linear.Name, original, x, half);
                Accumulate(targets, linear.Name, original, original, half);
            }
            if (collectAbsMean)
            {
                if (!absMeans.TryGetValue(linear.Name, out var accumulator)) absMeans[linear.Name] = accumulator = new ChannelAbsMeanAccumulator();
                accumulator.Add(x);
            }
        };
    }

    private static bool IsHalf(ScalarType dtype) => dtype is ScalarType.Float16 or ScalarType.BFloat16;

    private void ResetRun()
    {
        lastInput = null;
        lastOwner = null;
    }

    /// <summary>[…, n] → [tokens, n] in fp32 (bucket-averaged over consecutive samples when bucketing).</summary>
    private Tensor Flatten(Tensor input)
    {
        var x = input.to(ScalarType.Float32);
        if (bucketSize > 1 && x.shape.Length == 3)
        {
            var samples = x.shape[0];
            if (samples % bucketSize != 0)
                throw new InvalidOperationException($"batch of {samples} samples is not a multiple of the bucket size {bucketSize}");
            x = x.view(samples / bucketSize, bucketSize, x.shape[1], x.shape[2]).mean([1]);
        }
        return x.reshape(-1, x.shape[^1]);
    }

    /// <summary>sum += leftᵀ·right (fp32 product, fp64 sum). <paramref name="halfInputs"/> (only with TF32 enabled): both
    /// came from fp16/bf16 activations, and on CUDA the product runs on TF32 tensor cores with fp32 accumulation.
    /// Measured on an H100 (bench gpu): the Gram then differs from the fp32-FMA one by ~4e-5 relative (7B shape) to
    /// ~2e-4 (70B), moving the SVD-LLM factors by ~3e-5 resp. up to 2.3e-4 — hence opt-in.</summary>
    private static void Accumulate(Dictionary<string, Tensor> sums, string name, Tensor left, Tensor right, bool halfInputs)
    {
        using var scope = NewDisposeScope();
        var product = (halfInputs && left.device.type == DeviceType.CUDA ? Tf32Product(left, right) : matmul(left.T, right)).to(ScalarType.Float64);
        if (sums.TryGetValue(name, out var sum)) sum.add_(product);
        else sums[name] = product.DetachFromDisposeScope();
    }

    private static Tensor Tf32Product(Tensor left, Tensor right)
    {
        var before = backends.cuda.matmul.allow_tf32;
        backends.cuda.matmul.allow_tf32 = true;
        try
        {
            return matmul(left.T, right);
        }
        finally
        {
            backends.cuda.matmul.allow_tf32 = before;
        }
    }

    private string Owner(string name) => owner.TryGetValue(name, out var o) ? o
        : throw new InvalidOperationException($"no statistics were collected for {name}");

    public Tensor Gram(string name) => grams[Owner(name)];

    public Tensor? Cross(string name) => crosses.TryGetValue(Owner(name), out var c) ? c : null;

    /// <summary><c>T = X_o X_oᵀ</c> of the recorded original inputs (for objective values), or null.</summary>
    public Tensor? TargetGram(string name) => targets.TryGetValue(Owner(name), out var t) ? t : null;

    public Tensor AbsMean(string name) => absMeans[Owner(name)].Mean();

    /// <summary>Names of the linears that shared their input with <paramref name="name"/> (including itself).</summary>
    public IEnumerable<string> SharingWith(string name) => owner.Where(p => p.Value == Owner(name)).Select(p => p.Key);

    public void Dispose()
    {
        foreach (var t in grams.Values) t.Dispose();
        foreach (var t in crosses.Values) t.Dispose();
        foreach (var t in targets.Values) t.Dispose();
        foreach (var t in recorded.Values) t.Dispose();
        foreach (var a in absMeans.Values) a.Dispose();
        grams.Clear();
        crosses.Clear();
        targets.Clear();
        recorded.Clear();
        absMeans.Clear();
    }
}
