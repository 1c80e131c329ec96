using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>How the (weighted or whitened) matrix is decomposed. All paths run in fp64.</summary>
public enum SvdAlgorithm
{
    /// <summary><see cref="Direct"/> on the CPU, <see cref="GramEigh"/> on CUDA.</summary>
    Auto,
    /// <summary><c>torch.linalg.svd</c> in fp64 (LAPACK gesdd on the CPU): the reference.</summary>
    Direct,
    /// <summary>
    /// Eigendecomposition (<c>torch.linalg.eigh</c>, fp64) of the smaller Gram matrix M·Mᵀ or Mᵀ·M, then the other
    /// side's singular vectors as Mᵀuᵢ/σᵢ. Squaring the matrix loses the singular values below about
    /// √ε·σ₁ ≈ 1.5e-8·σ₁ in fp64; truncation keeps the top of the spectrum, which stays accurate to ~1e-12
    /// (tests check both). On GPUs fp64 eigh of a 4096² Gram is ~10× faster than fp64 SVD, and fp32 SVD is
    /// not an option there (~1e-3 relative error at 4096², ../shared/device/README.md).
    /// </summary>
    GramEigh,
}

/// <summary>A truncated SVD in fp64: the top-k factors and every singular value.</summary>
public sealed class TruncatedSvd : IDisposable
{
    internal TruncatedSvd(Tensor u, Tensor s, Tensor vh)
    {
        U = u.DetachFromDisposeScope();
        S = s.DetachFromDisposeScope();
        Vh = vh.DetachFromDisposeScope();
    }

    /// <summary>[m, k] left singular vectors of the top k.</summary>
    public Tensor U { get; }
    /// <summary>[min(m, n)] all singular values, descending.</summary>
    public Tensor S { get; }
    /// <summary>[k, n] right singular vectors (rows) of the top k.</summary>
    public Tensor Vh { get; }

    public long Rank => U.shape[1];

    /// <summary>The balanced split of the truncated matrix: <c>A = U_k Σ_k^½</c>, <c>B = Σ_k^½ V_kᵀ</c>.</summary>
    public (Tensor A, Tensor B) BalancedFactors()
    {
        var root = S[TensorIndex.Slice(0, Rank)].sqrt();
        return (U * root.unsqueeze(0), root.unsqueeze(1) * Vh);
    }

    public void Dispose()
    {
        U.Dispose();
        S.Dispose();
        Vh.Dispose();
    }
}

public static class SvdKernel
{
    /// <summary>Relative size (to σ₁) below which a Gram-derived singular vector is not computed (set to zero):
    /// a few times √ε of fp64, where the squared Gram can no longer resolve it.</summary>
    public const double GramResolution = 1e-7;

    public static SvdAlgorithm Resolve(SvdAlgorithm algorithm, Device device) =>
        algorithm != SvdAlgorithm.Auto ? algorithm : device.type == DeviceType.CUDA ? SvdAlgorithm.GramEigh : SvdAlgorithm.Direct;

    /// <summary>The top-<paramref name="rank"/> SVD of <paramref name="matrix"/> (any float dtype; computed in fp64).</summary>
    public static TruncatedSvd Truncate(Tensor matrix, long rank, SvdAlgorithm algorithm)
    {
        if (matrix.shape.Length != 2) throw new ArgumentException("matrix must be 2-D", nameof(matrix));
        var full = Math.Min(matrix.shape[0], matrix.shape[1]);
        if (rank < 1 || rank > full) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} outside [1, {full}]");
        using var scope = NewDisposeScope();
        var m = matrix.to(float64);
        // LAPACK fails on NaN/Inf with a native stack (or returns garbage): say what went wrong instead.
        NonFinite.Check(m, $"the [{m.shape[0]}, {m.shape[1]}] matrix to decompose", "the weights, or the calibration statistics that weight them, are not finite");
        try
        {
            if (Resolve(algorithm, m.device) == SvdAlgorithm.Direct)
            {
                var (u, s, vh) = linalg.svd(m, fullMatrices: false);
                return new TruncatedSvd(u[.., ..(int)rank].contiguous(), s, vh[..(int)rank].contiguous());
            }
            // Decompose the smaller Gram: M Mᵀ = U Σ² Uᵀ (wide) or Mᵀ M = V Σ² Vᵀ (tall).
            var gram = m.shape[0] <= m.shape[1] ? matmul(m, m.T) : matmul(m.T, m);
            gram = 0.5 * (gram + gram.T);
            var (eigenvalues, eigenvectors) = linalg.eigh(gram);
            return FromGramEigen(m, eigenvalues, eigenvectors, rank);
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            throw new LrkException(ErrorCodes.DecompositionFailed,
                $"the SVD of a [{m.shape[0]}, {m.shape[1]}] matrix failed: {FirstLine(e.Message)}", e);
        }
    }

    /// <summary>A native error's first line (libtorch appends its C++ stack to the message).</summary>
    internal static string FirstLine(string message)
    {
        var end = message.IndexOfAny(['\r', '\n']);
        return (end < 0 ? message : message[..end]).Trim();
    }

    private static TruncatedSvd FromGramEigen(Tensor m, Tensor eigenvalues, Tensor eigenvectors, long rank)
    {
        var wide = m.shape[0] <= m.shape[1];
        var s = eigenvalues.flip(0).clamp_min(0).sqrt();
        var top = eigenvectors.flip(1)[.., ..(int)rank];
        var sTop = s[..(int)rank];
        var resolvable = sTop > s[0] * GramResolution;
        var inverse = where(resolvable, 1.0 / sTop.clamp_min(double.Epsilon), zeros_like(sTop));
        if (wide)
        {
            // Vᵀ_k = Σ_k⁻¹ U_kᵀ M
            var vh = inverse.unsqueeze(1) * matmul(top.T, m);
            return new TruncatedSvd(top.contiguous(), s, vh);
        }
        // U_k = M V_k Σ_k⁻¹
        var uTall = matmul(m, top) * inverse.unsqueeze(0);
        return new TruncatedSvd(uTall, s, top.T.contiguous());
    }
}
