using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// One linear layer of a decoder block, <c>y = W x + b</c> with <c>W</c> of shape [out, in] (PyTorch layout;
/// GPT-2's Conv1D weights are transposed on load). A compressor replaces the dense weight by two factors,
/// <c>y ≈ A (B x) + b</c> with <c>A</c> [out, k] and <c>B</c> [k, in]. <see cref="Name"/> is the checkpoint prefix
/// (e.g. <c>model.layers.0.self_attn.q_proj</c>); <see cref="Kind"/> the type shared across blocks (<c>q_proj</c>).
/// The object owns its tensors: they are disposed when replaced or when the layer is disposed.
/// </summary>
public sealed class LinearWeight : IDisposable
{
    private readonly object gate = new();
    private readonly Func<Tensor>? reload;
    private Tensor? weight;
    private bool evicted;
    private bool modified;

    public LinearWeight(string name, string kind, Tensor weight, Tensor? bias)
    {
        Name = name;
        Kind = kind;
        this.weight = weight;
        Bias = bias;
        OutFeatures = weight.shape[0];
        InFeatures = weight.shape[1];
    }

    /// <summary>
    /// A dense layer whose weight is read from the checkpoint only when needed: <paramref name="reload"/> returns it as
    /// loaded ([out, in], compute dtype, on the host). Block streaming of models larger than host memory uses this: a
    /// block's unchanged weights are dropped (<see cref="Evict"/>) when it leaves the device and read again if it returns.
    /// </summary>
    public static LinearWeight Lazy(string name, string kind, long outFeatures, long inFeatures, Func<Tensor> reload, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(reload);
        return new LinearWeight(name, kind, outFeatures, inFeatures, bias, reload) { evicted = true };
    }

    /// <summary>A layer already stored as factors (a compressed artifact's <c>lowrank_A</c>/<c>lowrank_B</c>):
    /// <paramref name="a"/> [out, k], <paramref name="b"/> [k, in]; takes ownership of the tensors.</summary>
    public static LinearWeight Factorized(string name, string kind, Tensor a, Tensor b, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.shape.Length != 2 || b.shape.Length != 2 || a.shape[1] != b.shape[0])
            throw new ArgumentException($"{name}: factors [{string.Join(",", a.shape)}]·[{string.Join(",", b.shape)}] do not chain");
        return new LinearWeight(name, kind, a.shape[0], b.shape[1], bias) { A = a, B = b };
    }

    private LinearWeight(string name, string kind, long outFeatures, long inFeatures, Tensor? bias, Func<Tensor>? reload = null)
    {
        Name = name;
        Kind = kind;
        Bias = bias;
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
        this.reload = reload;
    }

    public string Name { get; }
    public string Kind { get; }
    public long OutFeatures { get; }
    public long InFeatures { get; }
    /// <summary>The dense weight [out, in] (null once factorised). An evicted lazy weight is read again on access.</summary>
    public Tensor? Weight
    {
        get
        {
            lock (gate)
            {
                if (evicted) Materialize();
                return weight;
            }
        }
    }

    /// <summary>True while a lazy weight is not in memory.</summary>
    public bool IsEvicted
    {
        get
        {
            lock (gate) return evicted;
        }
    }
    public Tensor? A { get; private set; }
    public Tensor? B { get; private set; }
    public Tensor? Bias { get; private set; }
    public bool IsFactorized => A is not null;
    public long Rank => A?.shape[1] ?? Math.Min(OutFeatures, InFeatures);

    /// <summary>Parameters stored for the weight (bias excluded): m·n dense, k·(m+n) factorised.</summary>
    public long ParameterCount => IsFactorized ? Rank * (OutFeatures + InFeatures) : OutFeatures * InFeatures;

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor y;
        if (IsFactorized)
        {
            var (a, b) = AlignedFactors(A!, B!, x.NumberOfElements / Math.Max(1, x.shape[^1]));
            y = nn.functional.linear(nn.functional.linear(x, b), a, Bias);
        }
        else y = nn.functional.linear(x, Weight!, Bias);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Half-precision CUDA GEMMs whose rank is not a multiple of this run cuBLAS's slow unaligned kernels.</summary>
    internal const int RankAlignment = 8;

    /// <summary>Rows below which a forward keeps the factors as they are (decoding a few tokens is bound by reading the
    /// factors, and copying them would cost more than alignment saves).</summary>
    internal const long AlignmentMinRows = 1024;

    /// <summary>
    /// The factors to multiply with: as stored, or zero-padded to a rank that is a multiple of <see cref="RankAlignment"/>
    /// for fp16/bf16 CUDA forwards of at least <see cref="AlignmentMinRows"/> rows. Measured on an H100 (bench/probe/
    /// lowrank_probe.py, 32768 tokens): A(Bx) for LLaMA-7B's MLP takes 6.9 ms at rank 1492 and 2.1 ms at 1496, because
    /// the intermediate's leading dimension then meets cuBLAS's 16-byte alignment. The padding adds rows of B and
    /// columns of A that are zero, so the product is the same; the stored rank (and the artifact) stay exact, and the
    /// padded copies live only for this call.
    /// </summary>
    internal static (Tensor A, Tensor B) AlignedFactors(Tensor a, Tensor b, long rows, bool force = false)
    {
        var rank = a.shape[1];
        var pad = (RankAlignment - rank % RankAlignment) % RankAlignment;
        var wanted = force || (a.device_type == DeviceType.CUDA && a.dtype is (ScalarType.Float16 or ScalarType.BFloat16) && rows >= AlignmentMinRows);
        if (pad == 0 || !wanted) return (a, b);
        return (nn.functional.pad(a, [0, pad]), nn.functional.pad(b, [0, 0, 0, pad]));
    }

    /// <summary>The dense weight [out, in]: the stored one, or A·B for a factorised layer (a new tensor).</summary>
    public Tensor DenseWeight() => IsFactorized ? matmul(A!, B!) : Weight!.alias();

    /// <summary>Replaces the weight by factors A [out, k] and B [k, in]; takes ownership of both.</summary>
    public void Factorize(Tensor a, Tensor b)
    {
        if (a.shape.Length != 2 || b.shape.Length != 2 || a.shape[0] != OutFeatures || b.shape[1] != InFeatures || a.shape[1] != b.shape[0])
            throw new ArgumentException($"{Name}: factors [{string.Join(",", a.shape)}]·[{string.Join(",", b.shape)}] do not make [{OutFeatures},{InFeatures}]");
        lock (gate)
        {
            weight?.Dispose();
            A?.Dispose();
            B?.Dispose();
            weight = null;
            evicted = false;
            modified = true;
            A = a.DetachFromDisposeScope();
            B = b.DetachFromDisposeScope();
        }
    }

    /// <summary>Replaces the dense weight (e.g. a dense update by a method, or a reload); takes ownership.</summary>
    public void SetDense(Tensor weight)
    {
        if (weight.shape[0] != OutFeatures || weight.shape[1] != InFeatures)
            throw new ArgumentException($"{Name}: weight [{string.Join(",", weight.shape)}] is not [{OutFeatures},{InFeatures}]");
        lock (gate)
        {
            this.weight?.Dispose();
            A?.Dispose();
            B?.Dispose();
            A = B = null;
            evicted = false;
            modified = true;
            this.weight = weight.DetachFromDisposeScope();
        }
    }

    /// <summary>Moves every tensor of this layer to <paramref name="device"/> (block streaming). An evicted lazy weight
    /// stays evicted for the host and is read straight to any other device.</summary>
    public void MoveTo(Device device)
    {
        lock (gate)
        {
            if (evicted && device.type != DeviceType.CPU) Materialize();
            weight = Move(weight, device);
            A = Move(A, device);
            B = Move(B, device);
            Bias = Move(Bias, device);
        }
    }

    /// <summary>Reads an evicted lazy weight into host memory now (a prefetch, from any thread). With
    /// <paramref name="pin"/> a host weight is put in page-locked memory, which the next <see cref="MoveTo"/> a GPU copies
    /// without the driver's staging buffers (on the H200 machine moving a 7B block's 0.4 GB took 0.18 s from pageable
    /// memory, about 2.2 GB/s, and 0.10 s with this read-ahead, waits included: BENCHMARKS.md, block_arrive).</summary>
    public void Prefetch(bool pin = false)
    {
        lock (gate)
        {
            if (evicted) Materialize();
            if (pin && weight is { device_type: DeviceType.CPU } host && !host.is_pinned())
            {
                weight = host.pin_memory().DetachFromDisposeScope();
                host.Dispose();
            }
        }
    }

    /// <summary>Drops the weight of a lazy layer that still holds exactly what the checkpoint has (it can be read again);
    /// returns false, keeping it, for any other layer.</summary>
    public bool Evict()
    {
        lock (gate)
        {
            // A weight taking part in autograd (FWSVD's Fisher passes) holds its gradient: dropping it would lose it.
            if (reload is null || modified || weight is null || weight.requires_grad) return evicted;
            weight.Dispose();
            weight = null;
            evicted = true;
            return true;
        }
    }

    private void Materialize()
    {
        var loaded = reload!();
        weight = loaded.DetachFromDisposeScope();
        evicted = false;
    }

    private static Tensor? Move(Tensor? tensor, Device device)
    {
        if (tensor is null || tensor.device == device) return tensor;
        var moved = (device.type == DeviceType.CPU && tensor.device_type == DeviceType.CUDA
            ? LowRank.Torch.PinnedStaging.ToHost(tensor)
            : tensor.to(device)).DetachFromDisposeScope();
        tensor.Dispose();
        return moved;
    }

    public void Dispose()
    {
        lock (gate)
        {
            weight?.Dispose();
            A?.Dispose();
            B?.Dispose();
            Bias?.Dispose();
            weight = A = B = Bias = null;
            evicted = false;
        }
    }
}
