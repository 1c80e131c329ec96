using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// Accumulates, over the calibration batches of one block, what the methods need from each linear's inputs:
/// the Gram <c>H = X Xᵀ</c> (per-batch products with fp32 accumulation, <see cref="GramPrecision"/>; summed over
/// batches in fp64), optionally the cross Gram <c>C = X_o Xᵀ</c>
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
    private readonly GramPrecision precision;
    private readonly bool collectCross;
    private Tensor? lastInput;
    private string? lastOwner;

    /// <param name="wanted">Which linears (by name) to collect for.</param>
    /// <param name="precision">How the per-batch products of half-precision CUDA inputs are computed (fp32 inputs always use fp32 FMA).</param>
    /// <param name="cross">After a <see cref="Recorder"/> run, also accumulate the cross Gram <c>C = X_o Xᵀ</c> (the recorded
    /// inputs' own Gram <c>X_o X_oᵀ</c> is always accumulated then).</param>
    public LinearStatistics(Func<string, bool> wanted, bool gram = true, bool absMean = false, int bucketSize = 1, GramPrecision precision = GramPrecision.Auto, bool cross = true)
    {
        this.precision = precision;
        collectCross = cross;
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

    /// <summary>Observer for a run on the ORIGINAL model's hidden states that accumulates their Gram <c>X_o X_oᵀ</c>
    /// (<see cref="TargetGram"/>) directly: what a <see cref="Recorder"/> run gives without holding the batch's inputs,
    /// for when no cross Gram is wanted. Sharing follows the same input identity as <see cref="Observer"/>'s.</summary>
    public LinearInputObserver TargetObserver()
    {
        ResetRun();
        return (linear, input) =>
        {
            if (!wanted(linear.Name) || ReferenceEquals(input, lastInput)) return;
            lastInput = input;
            lastOwner = linear.Name;
            using var scope = NewDisposeScope();
            var x = Flatten(input);
            Accumulate(targets, linear.Name, x, x, precision);
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
            if (collectGram) Accumulate(grams, linear.Name, x, x, precision);
            if (recorded.TryGetValue(linear.Name, out var original))
            {
                if (collectCross) Accumulate(crosses, linear.Name, original, x, precision);
                Accumulate(targets, linear.Name, original, original, precision);
            }
            if (collectAbsMean)
            {
                if (!absMeans.TryGetValue(linear.Name, out var accumulator)) absMeans[linear.Name] = accumulator = new ChannelAbsMeanAccumulator();
                accumulator.Add(x);
            }
        };
    }

    private static bool IsHalf(ScalarType dtype) => dtype is ScalarType.Float16 or ScalarType.BFloat16;

    /// <summary>The path <see cref="Accumulate"/> takes for <paramref name="inputs"/> of this dtype on this device under
    /// <paramref name="precision"/> (also what reports name).</summary>
    public static GramPrecision Resolve(GramPrecision precision, ScalarType inputs, Device device)
    {
        if (device.type != DeviceType.CUDA || !IsHalf(inputs) || precision == GramPrecision.Fp32) return GramPrecision.Fp32;
        if (precision == GramPrecision.Tf32) return GramPrecision.Tf32;
        return LowRank.Torch.CudaNative.Available(device) ? GramPrecision.TensorCores : GramPrecision.Tf32;
    }

    private void ResetRun()
    {
        lastInput = null;
        lastOwner = null;
    }

    /// <summary>[…, n] → [tokens, n], in the input's dtype; bucket-averaged in fp32 over consecutive samples when bucketing
    /// (a bucket mean is no longer a half-precision value).</summary>
    private Tensor Flatten(Tensor input)
    {
        var x = input;
        if (bucketSize > 1 && x.shape.Length == 3)
        {
            var samples = x.shape[0];
            if (samples % bucketSize != 0)
                throw new InvalidOperationException($"batch of {samples} samples is not a multiple of the bucket size {bucketSize}");
            x = x.to(ScalarType.Float32).view(samples / bucketSize, bucketSize, x.shape[1], x.shape[2]).mean([1]);
        }
        return x.reshape(-1, x.shape[^1]);
    }

    /// <summary>sum += leftᵀ·right: the per-batch product with fp32 accumulation (<see cref="Resolve"/> picks tensor cores,
    /// TF32 or fp32 FMA), added to an fp64 sum so the error does not grow with the number of batches.</summary>
    private static void Accumulate(Dictionary<string, Tensor> sums, string name, Tensor left, Tensor right, GramPrecision precision)
    {
        using var scope = NewDisposeScope();
        var product = Product(left, right, precision);
        // In place with promotion: no fp64 copy of the batch's product (6.6 GB for a 70B down_proj).
        if (sums.TryGetValue(name, out var sum)) sum.add_(product);
        else sums[name] = product.to(ScalarType.Float64).DetachFromDisposeScope();
    }

    /// <summary>One batch's <c>leftᵀ·right</c> [n₁, n₂] in fp32 along the path <see cref="Resolve"/> picks.</summary>
    internal static Tensor Product(Tensor left, Tensor right, GramPrecision precision)
    {
        var path = left.dtype == right.dtype ? Resolve(precision, left.dtype, left.device) : GramPrecision.Fp32;
        return path switch
        {
            GramPrecision.TensorCores => LowRank.Torch.CudaNative.HalfGram(left, right),
            GramPrecision.Tf32 => Tf32Product(left.to(ScalarType.Float32), right.to(ScalarType.Float32)),
            _ => Fp32Product(left.to(ScalarType.Float32), right.to(ScalarType.Float32)),
        };
    }

    private static Tensor Tf32Product(Tensor left, Tensor right) => WithTf32(true, () => matmul(left.T, right));

    private static Tensor Fp32Product(Tensor left, Tensor right) =>
        left.device.type == DeviceType.CUDA ? WithTf32(false, () => matmul(left.T, right)) : matmul(left.T, right);

    private static Tensor WithTf32(bool allow, Func<Tensor> product)
    {
        var before = backends.cuda.matmul.allow_tf32;
        backends.cuda.matmul.allow_tf32 = allow;
        try
        {
            return product();
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

    /// <summary><c>T = X_o X_oᵀ</c> of the recorded original inputs, or null.</summary>
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
