using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// ASVD (Yuan et al., 2023, "ASVD: Activation-aware Singular Value Decomposition for Compressing LLMs").
/// Input channels with large activations matter more, so the weight is scaled per input channel before the SVD
/// and the scaling is undone on B (ASVD Eq. 4–6):
/// <c>S = diag(s)</c>, <c>s_j = (mean_t |x_tj|)^α + 1e-6</c> (α = 0.5, the paper's default and its code's epsilon);
/// <c>W S = U Σ Vᵀ</c>, <c>A = U_k Σ_k^½</c>, <c>B = Σ_k^½ V_kᵀ S⁻¹</c>.
/// The paper's optional per-layer sensitivity sweep is not implemented (uniform ranks, like its "ASVD" rows without
/// the search).
/// </summary>
public static class Asvd
{
    public const double DefaultAlpha = 0.5;
    public const double ScalingEpsilon = 1e-6;

    /// <summary><c>s_j = (mean_t |x_tj|)^α + 1e-6</c> from the per-channel mean absolute activation [n].</summary>
    public static Tensor Scaling(Tensor channelAbsMean, double alpha) =>
        channelAbsMean.to(float64).clamp_min(0).pow(alpha) + ScalingEpsilon;

    public static LowRankFactors Factorize(Tensor weight, Tensor channelAbsMean, double alpha, long rank, SvdAlgorithm algorithm)
    {
        using var scope = NewDisposeScope();
        var s = Scaling(channelAbsMean, alpha);
        var scaled = weight.to(float64) * s.unsqueeze(0);
        using var svd = SvdKernel.Truncate(scaled, rank, algorithm);
        var (a, b) = svd.BalancedFactors();
        return new LowRankFactors(a, b / s.unsqueeze(0), svd.S.clone());
    }

    /// <summary>Pipeline: channel |x| means of every linear's input, block by block (original model by default, as ASVD
    /// profiles it), then the scaled SVD.</summary>
    internal static void Run(CompressionRun run)
    {
        run.SingleStreamPass("compress", run.Options.EffectivePropagation,
            block => new LinearStatistics(_ => true, gram: false, absMean: true),
            (block, stats) =>
            {
                foreach (var linear in run.Compressible(block).ToArray())
                {
                    using var scope = NewDisposeScope();
                    using var factors = Factorize(run.WeightOnDevice(linear), stats.AbsMean(linear.Name), run.Options.AsvdAlpha,
                        run.Plan[linear.Name].Rank, run.Algorithm);
                    run.Apply(linear, factors);
                }
            });
    }
}

/// <summary>Accumulates <c>Σ_t |x_tj|</c> and the token count of a linear's inputs, in fp64 (ASVD's statistic).</summary>
public sealed class ChannelAbsMeanAccumulator : IDisposable
{
    private Tensor? sum;
    private long tokens;

    public void Add(Tensor input)
    {
        using var scope = NewDisposeScope();
        var flat = input.reshape(-1, input.shape[^1]);
        var batchSum = flat.abs().sum(dim: 0, type: float64);
        if (sum is null) sum = batchSum.DetachFromDisposeScope();
        else sum.add_(batchSum);
        tokens += flat.shape[0];
    }

    public long Tokens => tokens;

    /// <summary>mean_t |x_tj| [n] (fp64).</summary>
    public Tensor Mean() => sum is null ? throw new InvalidOperationException("no inputs observed") : sum / tokens;

    public void Dispose() => sum?.Dispose();
}
