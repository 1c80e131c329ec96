using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// A rank-k approximation <c>W ≈ A·B</c> (A [m, k], B [k, n], fp64) as one method computed it, with the singular values
/// of the matrix that was truncated (the weighted/whitened one: its dropped tail is what the truncation cost).
/// Owns its tensors.
/// </summary>
public sealed class LowRankFactors : IDisposable
{
    public LowRankFactors(Tensor a, Tensor b, Tensor singularValues)
    {
        A = a.DetachFromDisposeScope();
        B = b.DetachFromDisposeScope();
        SingularValues = singularValues.DetachFromDisposeScope();
    }

    public Tensor A { get; private set; }
    public Tensor B { get; private set; }

    /// <summary>All singular values of the truncated matrix, descending (fp64, same device as the factors).</summary>
    public Tensor SingularValues { get; }

    public long Rank => A.shape[1];

    /// <summary><c>sqrt(Σ_{j≥k} σ_j²)</c>: the cost of the truncation in the norm the method minimises.</summary>
    public double TruncationLoss => TailNorm(SingularValues, Rank);

    public Tensor Product() => matmul(A, B);

    /// <summary>Replaces both factors (used by refinements such as adaComp); takes ownership.</summary>
    public void Replace(Tensor a, Tensor b)
    {
        A.Dispose();
        B.Dispose();
        A = a.DetachFromDisposeScope();
        B = b.DetachFromDisposeScope();
    }

    public static double TailNorm(Tensor singularValues, long rank)
    {
        using var scope = NewDisposeScope();
        if (rank >= singularValues.shape[0]) return 0;
        return Math.Sqrt(singularValues[TensorIndex.Slice(rank)].to(float64).square().sum().item<double>());
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
        SingularValues.Dispose();
    }
}
