using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// FWSVD (Hsu et al., 2022, "Language Model Compression with Weighted Low-Rank Factorization").
/// The empirical Fisher <c>F_ij = E[(∂L/∂W_ij)²]</c> says how much the LM loss cares about each weight; FWSVD keeps a
/// row/column-separable weighting so the problem stays an SVD (FWSVD Eq. 5–7). Following ../shared/docs/methods.md
/// the weighting is per input feature: <c>d_j = sqrt(Σ_i F_ij)</c>, SVD of <c>W·diag(d)</c>, undone on B:
/// <c>B = Σ_k^½ V_kᵀ diag(d)⁻¹</c>. Columns that received no gradient would make diag(d) singular, so d is floored at
/// <see cref="RelativeFloor"/>·max(d) (such columns carry no loss signal; the floor only keeps the undo finite).
/// </summary>
public static class Fwsvd
{
    public const double RelativeFloor = 1e-6;

    /// <summary><c>d_j = sqrt(Σ_i F_ij)</c> from the diagonal Fisher [m, n] of one weight.</summary>
    public static Tensor ColumnWeights(Tensor fisher)
    {
        using var scope = NewDisposeScope();
        var d = fisher.to(float64).sum(dim: 0).clamp_min(0).sqrt();
        var max = d.max().item<double>();
        if (!(max > 0)) return ones_like(d).MoveToOuterDisposeScope();
        return d.clamp_min(max * RelativeFloor).MoveToOuterDisposeScope();
    }

    public static LowRankFactors Factorize(Tensor weight, Tensor fisher, long rank, SvdAlgorithm algorithm)
    {
        using var scope = NewDisposeScope();
        var d = ColumnWeights(fisher);
        var weighted = weight.to(float64) * d.unsqueeze(0);
        using var svd = SvdKernel.Truncate(weighted, rank, algorithm);
        var (a, b) = svd.BalancedFactors();
        return new LowRankFactors(a, b / d.unsqueeze(0), svd.S.clone());
    }
}
