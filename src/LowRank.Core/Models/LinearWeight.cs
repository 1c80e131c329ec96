using LowRank.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// One linear layer of a decoder block, <c>y = W x + b</c> with <c>W</c> of shape [out, in] (PyTorch layout;
/// GPT-2's Conv1D weights are transposed on load). A compressor replaces the dense weight by two factors,
/// <c>y ≈ A (B x) + b</c> with <c>A</c> [out, k] and <c>B</c> [k, in]. <see cref="Name"/> is the checkpoint prefix
/// (e.g. <c>model.layers.0.self_attn.q_proj</c>); <see cref="Kind"/> the type shared across blocks (<c>q_proj</c>).
/// Either form may be stored quantized (<see cref="QuantizedWeight"/>, <see cref="QuantizedA"/>/<see cref="QuantizedB"/>):
/// the forward pass then dequantizes on the fly, into the activations' dtype, for each call (TorchSharp exposes no
/// integer GEMM), so memory holds only the packed form.
/// The object owns its tensors: they are disposed when replaced or when the layer is disposed.
/// </summary>
public sealed class LinearWeight : IDisposable
{
    private readonly object gate = new();
    private readonly Func<Tensor>? reload;
    private Tensor? weight;
    private bool evicted;
    private bool modified;
    private QuantizedMatrix? quantizedWeight;
    private QuantizedMatrix? quantizedA;
    private QuantizedMatrix? quantizedB;

    public LinearWeight(string name, string kind, Tensor weight, Tensor? bias)
    {
        Name = name;
        Kind = kind;
        this.weight = weight;
        Bias = bias;
        OutFeatures = weight.shape[0];
        InFeatures = weight.shape[1];
        Dtype = weight.dtype;
    }

    /// <summary>
    /// A dense layer whose weight is read from the checkpoint only when needed: <paramref name="reload"/> returns it as
    /// loaded ([out, in], compute dtype, on the host). Block streaming of models larger than host memory uses this: a
    /// block's unchanged weights are dropped (<see cref="Evict"/>) when it leaves the device and read again if it returns.
    /// </summary>
    public static LinearWeight Lazy(string name, string kind, long outFeatures, long inFeatures, Func<Tensor> reload, Tensor? bias,
        ScalarType dtype = ScalarType.Float32)
    {
        ArgumentNullException.ThrowIfNull(reload);
        return new LinearWeight(name, kind, outFeatures, inFeatures, bias, reload) { evicted = true, Dtype = dtype };
    }

    /// <summary>A layer already stored as factors (a compressed artifact's <c>lowrank_A</c>/<c>lowrank_B</c>):
    /// <paramref name="a"/> [out, k], <paramref name="b"/> [k, in]; takes ownership of the tensors.</summary>
    public static LinearWeight Factorized(string name, string kind, Tensor a, Tensor b, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.shape.Length != 2 || b.shape.Length != 2 || a.shape[1] != b.shape[0])
            throw new ArgumentException($"{name}: factors [{string.Join(",", a.shape)}]·[{string.Join(",", b.shape)}] do not chain");
        return new LinearWeight(name, kind, a.shape[0], b.shape[1], bias) { A = a, B = b, Dtype = a.dtype };
    }

    /// <summary>A layer stored quantized (an artifact's <c>.qweight</c>/<c>.scales</c>/<c>.qzeros</c>): either a dense
    /// <paramref name="weight"/> [out, in], or factors <paramref name="a"/> [out, k] and <paramref name="b"/> [k, in];
    /// <paramref name="dtype"/> is the compute dtype it is dequantized to. Takes ownership.</summary>
    public static LinearWeight Quantized(string name, string kind, long outFeatures, long inFeatures, QuantizedMatrix? weight,
        QuantizedMatrix? a, QuantizedMatrix? b, Tensor? bias, ScalarType dtype)
    {
        if ((weight is null) == (a is null || b is null) || (a is null) != (b is null))
            throw new ArgumentException($"{name}: give either a quantized weight or both quantized factors");
        if (weight is not null && (weight.Rows != outFeatures || weight.Columns != inFeatures))
            throw new ArgumentException($"{name}: quantized weight [{weight.Rows},{weight.Columns}] is not [{outFeatures},{inFeatures}]");
        if (a is not null && (a.Rows != outFeatures || b!.Columns != inFeatures || a.Columns != b.Rows))
            throw new ArgumentException($"{name}: quantized factors [{a.Rows},{a.Columns}]·[{b!.Rows},{b.Columns}] do not make [{outFeatures},{inFeatures}]");
        return new LinearWeight(name, kind, outFeatures, inFeatures, bias)
        {
            quantizedWeight = weight, quantizedA = a, quantizedB = b, Dtype = dtype,
        };
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

    /// <summary>The compute dtype: of the weights as loaded, and what quantized storage is dequantized to.</summary>
    public ScalarType Dtype { get; private set; } = ScalarType.Float32;
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
    /// <summary>The factors in floating point (null when dense or when stored quantized).</summary>
    public Tensor? A { get; private set; }
    public Tensor? B { get; private set; }
    public Tensor? Bias { get; private set; }

    /// <summary>The dense weight stored as integers (null otherwise).</summary>
    public QuantizedMatrix? QuantizedWeight => quantizedWeight;

    /// <summary>The factors stored as integers (null otherwise).</summary>
    public QuantizedMatrix? QuantizedA => quantizedA;
    public QuantizedMatrix? QuantizedB => quantizedB;

    public bool IsFactorized => A is not null || quantizedA is not null;
    public bool IsQuantized => quantizedWeight is not null || quantizedA is not null;
    public long Rank => A?.shape[1] ?? quantizedA?.Columns ?? Math.Min(OutFeatures, InFeatures);

    /// <summary>Parameters stored for the weight (bias excluded): m·n dense, k·(m+n) factorised.</summary>
    public long ParameterCount => IsFactorized ? Rank * (OutFeatures + InFeatures) : OutFeatures * InFeatures;

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor y;
        if (IsFactorized)
        {
            var storedA = A ?? quantizedA!.Dequantize(x.dtype);
            var storedB = B ?? quantizedB!.Dequantize(x.dtype);
            var (a, b) = AlignedFactors(storedA, storedB, x.NumberOfElements / Math.Max(1, x.shape[^1]));
            y = nn.functional.linear(nn.functional.linear(x, b), a, Bias);
        }
        else y = nn.functional.linear(x, quantizedWeight?.Dequantize(x.dtype) ?? Weight!, Bias);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Half-precision CUDA GEMMs whose rank is not a multiple of this run cuBLAS's slow unaligned kernels.</summary>
    internal const int RankAlignment = 8;

    /// <summary>Rows below which a forward keeps the factors as they are (decoding a few tokens is bound by reading the
    /// factors, and copying them would cost more than alignment saves).</summary>
    internal const long AlignmentMinRows = 1024;

    /// <summary>
    /// The factors to multiply with: as stored, or zero-padded to a rank that is a multiple of <see cref="RankAlignment"/>
    /// for fp16/bf16 CUDA forwards of at least <see cref="AlignmentMinRows"/> rows: at other ranks the intermediate's
    /// leading dimension misses cuBLAS's 16-byte alignment and A(Bx) leaves the fast tensor-core kernels, several times
    /// slower, slower than the dense product (BENCHMARKS.md, "Kernels behind the changes"). The padding adds rows of B and
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

    /// <summary>The dense weight [out, in]: the stored one, or A·B for a factorised layer (a new tensor); quantized storage
    /// dequantized to <see cref="Dtype"/>.</summary>
    public Tensor DenseWeight()
    {
        if (quantizedWeight is not null) return quantizedWeight.Dequantize(Dtype);
        if (quantizedA is not null)
        {
            using var scope = NewDisposeScope();
            return matmul(quantizedA.Dequantize(Dtype), quantizedB!.Dequantize(Dtype)).MoveToOuterDisposeScope();
        }
        return IsFactorized ? matmul(A!, B!) : Weight!.alias();
    }

    /// <summary>Replaces the factors by quantized ones (<paramref name="a"/> [out, k], <paramref name="b"/> [k, in]); takes
    /// ownership.</summary>
    public void Quantize(QuantizedMatrix a, QuantizedMatrix b)
    {
        if (a.Rows != OutFeatures || b.Columns != InFeatures || a.Columns != b.Rows)
            throw new ArgumentException($"{Name}: quantized factors [{a.Rows},{a.Columns}]·[{b.Rows},{b.Columns}] do not make [{OutFeatures},{InFeatures}]");
        lock (gate)
        {
            DropAll();
            quantizedA = a;
            quantizedB = b;
        }
    }

    /// <summary>Replaces the dense weight by a quantized one [out, in]; takes ownership.</summary>
    public void Quantize(QuantizedMatrix weight)
    {
        if (weight.Rows != OutFeatures || weight.Columns != InFeatures)
            throw new ArgumentException($"{Name}: quantized weight [{weight.Rows},{weight.Columns}] is not [{OutFeatures},{InFeatures}]");
        lock (gate)
        {
            DropAll();
            quantizedWeight = weight;
        }
    }

    /// <summary>Frees every stored form of the weight (not the bias); the caller installs the new one. Under the gate.</summary>
    private void DropAll()
    {
        Dtype = weight?.dtype ?? A?.dtype ?? Dtype;
        weight?.Dispose();
        A?.Dispose();
        B?.Dispose();
        quantizedWeight?.Dispose();
        quantizedA?.Dispose();
        quantizedB?.Dispose();
        weight = null;
        A = B = null;
        quantizedWeight = quantizedA = quantizedB = null;
        evicted = false;
        modified = true;
    }

    /// <summary>Replaces the weight by factors A [out, k] and B [k, in]; takes ownership of both.</summary>
    public void Factorize(Tensor a, Tensor b)
    {
        if (a.shape.Length != 2 || b.shape.Length != 2 || a.shape[0] != OutFeatures || b.shape[1] != InFeatures || a.shape[1] != b.shape[0])
            throw new ArgumentException($"{Name}: factors [{string.Join(",", a.shape)}]·[{string.Join(",", b.shape)}] do not make [{OutFeatures},{InFeatures}]");
        lock (gate)
        {
            DropAll();
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
            DropAll();
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
            quantizedWeight?.MoveTo(device);
            quantizedA?.MoveTo(device);
            quantizedB?.MoveTo(device);
        }
    }

    /// <summary>Reads an evicted lazy weight into host memory now (a prefetch, from any thread). With
    /// <paramref name="pin"/> a host weight is put in page-locked memory, which the next <see cref="MoveTo"/> a GPU copies
    /// without the driver's staging buffers, at the bus's speed instead of the pageable copy's (BENCHMARKS.md, "GPU",
    /// block_arrive).</summary>
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
            DropAll();
            Bias?.Dispose();
            Bias = null;
        }
    }
}
