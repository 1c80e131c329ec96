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

    /// <summary>Pipeline: no calibration data; every planned linear is factorised where it is.</summary>
    internal static void Run(CompressionRun run)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var block = 0; block < run.BlockCount; block++)
        {
            run.Report("compress", block, $"block {block + 1}/{run.BlockCount}");
            foreach (var linear in run.Compressible(block).ToArray())
            {
                using var scope = NewDisposeScope();
                using var factors = Factorize(run.WeightOnDevice(linear), run.Plan[linear.Name].Rank, run.Algorithm);
                run.Apply(linear, factors);
            }
        }
        run.Seconds["compress"] = clock.Elapsed.TotalSeconds;
    }
}
