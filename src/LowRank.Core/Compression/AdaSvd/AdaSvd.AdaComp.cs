using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>adaComp (§3.2, Eq. 7–10): the alternating least-squares refit of a truncation against the inputs the compressed model feeds the layer (see <see cref="AdaSvd"/>).</summary>
public static partial class AdaSvd
{
    /// <summary>
    /// Runs <paramref name="iterations"/> rounds of (U-update, V-update) on <paramref name="factors"/> in place.
    /// <paramref name="cross"/> is <c>C = X_t Xᵀ</c>; null means <c>C = H</c> (target = compressed inputs).
    /// Returns the Gram-form objective (without the constant <c>tr(W X_t X_tᵀ Wᵀ)</c>) after each half-step, first entry = start.
    /// </summary>
    /// <remarks>The pseudo-inverses of the normal equations are applied as solves with the Cholesky factor of the
    /// (PSD) matrix, falling back to an eigendecomposition-based pseudo-inverse with cut-off <paramref name="pinvRtol"/>
    /// when it is singular: Eq. 8 needs (Vᵀ H V)⁺ (k×k), Eq. 9 U⁺ = (UᵀU)⁺Uᵀ (k×k) and W C H⁺. With C = H the
    /// latter is W itself (W H H⁺ differs from W only on the null space of H, which the objective does not see).</remarks>
    public static double[] Refine(Tensor weight, Tensor gram, Tensor? cross, LowRankFactors factors, int iterations, double pinvRtol)
    {
        var trace = new List<double>();
        using var scope = NewDisposeScope();
        var w = weight.to(float64);
        var h = Whitening.SymmetrizeInPlace(gram.to(float64));
        // With C = H every product the updates and the objective need goes through H V (n×k), never W H (m×n×n): for a
        // 7B down_proj that is 2·n²·k instead of 2·m·n² fp64 FLOPs per evaluation. A cross Gram needs W C once.
        var wc = cross is null ? null : matmul(w, cross.to(float64));    // W C  [m, n]
        var u = factors.A.to(float64);                                   // U    [m, k]
        var vt = factors.B.to(float64);                                  // Vᵀ   [k, n]
        var (wcv, vhv) = Projections(w, wc, h, vt);                      // W C V [m, k], Vᵀ H V [k, k]
        trace.Add(Objective(u, wcv, vhv));
        if (iterations > 0)
        {
            // M = W C H⁺: the least-squares map from the compressed inputs to the targets (Eq. 9 without U⁺).
            var target = wc is null ? w : PsdSolve(h, wc.T, pinvRtol).T;
            for (var round = 0; round < iterations; round++)
            {
                // Eq. 8: U = W C V (Vᵀ H V)⁺
                u = PsdSolve(vhv, wcv.T, pinvRtol).T;
                trace.Add(Objective(u, wcv, vhv));
                // Eq. 9: Vᵀ = U⁺ W C H⁺ = (UᵀU)⁺ Uᵀ M
                vt = PsdSolve(matmul(u.T, u), matmul(u.T, target), pinvRtol);
                (wcv, vhv) = Projections(w, wc, h, vt);
                trace.Add(Objective(u, wcv, vhv));
            }
        }
        var (a, b) = Rebalance(u, vt);
        var (newA, newB) = (a.to(factors.A.dtype), b.to(factors.B.dtype));
        // The old factors may come from another CUDA stream's memory pool (AdaSVD's starts, made on the decomposition
        // worker): nothing queued here may still read them when they go back to it.
        LowRank.Torch.CudaStreams.SynchronizeThisThread(weight.device);
        factors.Replace(newA, newB);
        return trace.ToArray();
    }

    /// <summary><c>W C V</c> and <c>Vᵀ H V</c> for the current V (<paramref name="wc"/> null: C = H).</summary>
    private static (Tensor WcV, Tensor VhV) Projections(Tensor w, Tensor? wc, Tensor h, Tensor vt)
    {
        var hv = matmul(h, vt.T);
        return (wc is null ? matmul(w, hv) : matmul(wc, vt.T), matmul(vt, hv));
    }

    /// <summary><c>‖W X_t − U Vᵀ X‖² − ‖W X_t‖² = tr(UᵀU · Vᵀ H V) − 2 tr(Uᵀ W C V)</c>.</summary>
    private static double Objective(Tensor u, Tensor wcv, Tensor vhv)
    {
        using var scope = NewDisposeScope();
        return (matmul(u.T, u) * vhv).sum().item<double>() - 2 * (u * wcv).sum().item<double>();
    }

    /// <summary><c>‖W X‖² = tr(W G Wᵀ)</c> for the Gram <c>G = X Xᵀ</c>: the scale that makes an objective relative.</summary>
    internal static double OutputEnergy(Tensor weight, Tensor gram)
    {
        using var scope = NewDisposeScope();
        var w = weight.to(float64);
        return (matmul(w, gram.to(float64)) * w).sum().item<double>();
    }

    /// <summary><c>S⁺ R</c> for a symmetric PSD <paramref name="s"/>: two triangular solves with its Cholesky factor, or
    /// the eigendecomposition-based pseudo-inverse (relative cut-off <paramref name="rtol"/>) when S is singular.</summary>
    internal static Tensor PsdSolve(Tensor s, Tensor r, double rtol)
    {
        using var scope = NewDisposeScope();
        var sym = (s + s.T) * 0.5;
        var (l, info) = linalg.cholesky_ex(sym, check_errors: false);
        if (info.item<int>() == 0)
        {
            var x = linalg.solve_triangular(l.T, linalg.solve_triangular(l, r, upper: false), upper: true);
            if (x.isfinite().all().item<bool>()) return x.MoveToOuterDisposeScope();
        }
        return matmul(linalg.pinv(sym, rtol: rtol, hermitian: true), r).MoveToOuterDisposeScope();
    }

    /// <summary>Same product U Vᵀ with the norms balanced per rank-one term: column j of A and row j of B get equal norms
    /// (scaled by s_j and 1/s_j), as the other methods' <c>U Σ^½</c> / <c>Σ^½ Vᵀ</c> split has, so neither factor
    /// under- or overflows when stored in half precision. O((m + n)·k), no decomposition.</summary>
    private static (Tensor A, Tensor B) Rebalance(Tensor u, Tensor vt)
    {
        var uNorms = linalg.vector_norm(u, dims: [0]);
        var vNorms = linalg.vector_norm(vt, dims: [1]);
        var live = (uNorms > 0).logical_and(vNorms > 0);
        var scale = where(live, (vNorms / uNorms.clamp_min(double.Epsilon)).sqrt(), ones_like(uNorms));
        return (u * scale.unsqueeze(0), vt / scale.unsqueeze(1));
    }
}
