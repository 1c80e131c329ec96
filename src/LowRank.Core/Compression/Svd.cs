using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// The baseline: truncated SVD of the weight itself, <c>W ≈ U_k Σ_k V_kᵀ</c> (Eckart–Young: optimal for ‖W − W'‖_F,
/// blind to the data the layer sees). Factors are split evenly, <c>A = U_k Σ_k^½</c>, <c>B = Σ_k^½ V_kᵀ</c>.
/// </summary>
public static class Svd
{
    public static LowRankFactors Factorize(Tensor weight, long rank, SvdAlgorithm algorithm)
    {
        using var scope = NewDisposeScope();
        using var svd = SvdKernel.Truncate(weight.to(float64), rank, algorithm);
        var (a, b) = svd.BalancedFactors();
        return new LowRankFactors(a, b, svd.S.clone());
    }
}
