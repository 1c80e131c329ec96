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
    public LinearWeight(string name, string kind, Tensor weight, Tensor? bias)
    {
        Name = name;
        Kind = kind;
        Weight = weight;
        Bias = bias;
        OutFeatures = weight.shape[0];
        InFeatures = weight.shape[1];
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

    private LinearWeight(string name, string kind, long outFeatures, long inFeatures, Tensor? bias)
    {
        Name = name;
        Kind = kind;
        Bias = bias;
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
    }

    public string Name { get; }
    public string Kind { get; }
    public long OutFeatures { get; }
    public long InFeatures { get; }
    public Tensor? Weight { get; private set; }
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
        var y = IsFactorized
            ? nn.functional.linear(nn.functional.linear(x, B!), A!, Bias)
            : nn.functional.linear(x, Weight!, Bias);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>The dense weight [out, in]: the stored one, or A·B for a factorised layer (a new tensor).</summary>
    public Tensor DenseWeight() => IsFactorized ? matmul(A!, B!) : Weight!.alias();

    /// <summary>Replaces the weight by factors A [out, k] and B [k, in]; takes ownership of both.</summary>
    public void Factorize(Tensor a, Tensor b)
    {
        if (a.shape.Length != 2 || b.shape.Length != 2 || a.shape[0] != OutFeatures || b.shape[1] != InFeatures || a.shape[1] != b.shape[0])
            throw new ArgumentException($"{Name}: factors [{string.Join(",", a.shape)}]·[{string.Join(",", b.shape)}] do not make [{OutFeatures},{InFeatures}]");
        Weight?.Dispose();
        A?.Dispose();
        B?.Dispose();
        Weight = null;
        A = a.DetachFromDisposeScope();
        B = b.DetachFromDisposeScope();
    }

    /// <summary>Replaces the dense weight (e.g. a dense update by a method, or a reload); takes ownership.</summary>
    public void SetDense(Tensor weight)
    {
        if (weight.shape[0] != OutFeatures || weight.shape[1] != InFeatures)
            throw new ArgumentException($"{Name}: weight [{string.Join(",", weight.shape)}] is not [{OutFeatures},{InFeatures}]");
        Weight?.Dispose();
        A?.Dispose();
        B?.Dispose();
        A = B = null;
        Weight = weight.DetachFromDisposeScope();
    }

    /// <summary>Moves every tensor of this layer to <paramref name="device"/> (block streaming).</summary>
    public void MoveTo(Device device)
    {
        Weight = Move(Weight, device);
        A = Move(A, device);
        B = Move(B, device);
        Bias = Move(Bias, device);
    }

    private static Tensor? Move(Tensor? tensor, Device device)
    {
        if (tensor is null || tensor.device == device) return tensor;
        var moved = tensor.to(device).DetachFromDisposeScope();
        tensor.Dispose();
        return moved;
    }

    public void Dispose()
    {
        Weight?.Dispose();
        A?.Dispose();
        B?.Dispose();
        Bias?.Dispose();
        Weight = A = B = Bias = null;
    }
}
