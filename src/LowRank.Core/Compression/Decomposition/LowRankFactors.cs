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

    /// <summary>How the truncated matrix was whitened, where a caller kept that with the factors (<see cref="Detach"/>).</summary>
    public string? Whitening { get; private init; }

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

    /// <summary>A new owner of these tensors, tagged with <paramref name="whitening"/>; this object gives them up (its
    /// <see cref="Dispose"/> then frees nothing), so factors handed to a callback can outlive it.</summary>
    public LowRankFactors Detach(WhiteningKind whitening)
    {
        ObjectDisposedException.ThrowIf(detached, this);
        detached = true;
        return new LowRankFactors(A, B, SingularValues) { Whitening = whitening.ToString() };
    }

    private bool detached;

    public static double TailNorm(Tensor singularValues, long rank)
    {
        using var scope = NewDisposeScope();
        if (rank >= singularValues.shape[0]) return 0;
        return Math.Sqrt(singularValues[TensorIndex.Slice(rank)].to(float64).square().sum().item<double>());
    }

    public void Dispose()
    {
        if (detached) return;
        A.Dispose();
        B.Dispose();
        SingularValues.Dispose();
    }
}
