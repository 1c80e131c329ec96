using LowRank.Models;
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
        return ColumnWeightsFromSums(fisher.to(float64).sum(dim: 0)).MoveToOuterDisposeScope();
    }

    /// <summary><c>d_j = sqrt(Σ_i F_ij)</c> from the Fisher's column sums [n] (all the pipeline keeps: n numbers per
    /// linear instead of a second copy of the model).</summary>
    public static Tensor ColumnWeightsFromSums(Tensor fisherColumnSums)
    {
        using var scope = NewDisposeScope();
        var d = fisherColumnSums.to(float64).clamp_min(0).sqrt();
        var max = d.max().item<double>();
        if (!(max > 0)) return ones_like(d).MoveToOuterDisposeScope();
        return d.clamp_min(max * RelativeFloor).MoveToOuterDisposeScope();
    }

    public static LowRankFactors Factorize(Tensor weight, Tensor fisher, long rank, SvdAlgorithm algorithm)
    {
        using var scope = NewDisposeScope();
        return FactorizeWeighted(weight, ColumnWeights(fisher), rank, algorithm);
    }

    /// <summary>SVD of <c>W·diag(d)</c>, undone on B.</summary>
    public static LowRankFactors FactorizeWeighted(Tensor weight, Tensor columnWeights, long rank, SvdAlgorithm algorithm)
    {
        using var scope = NewDisposeScope();
        var d = columnWeights.to(float64);
        var weighted = weight.to(float64) * d.unsqueeze(0);
        using var svd = SvdKernel.Truncate(weighted, rank, algorithm);
        var (a, b) = svd.BalancedFactors();
        return new LowRankFactors(a, b / d.unsqueeze(0), svd.S.clone());
    }

    /// <summary>
    /// Pipeline: backward passes of the LM loss (next-token cross-entropy, mean over the batch's predicted positions)
    /// over the whole original model, <see cref="CompressionOptions.FisherBatchSize"/> samples at a time; the squared
    /// gradient of every block linear's weight is summed over its rows (all FWSVD's weighting needs). Then each linear is
    /// factorised with its column weights; no forward statistics are needed.
    /// </summary>
    internal static void Run(CompressionRun run)
    {
        if (run.Model is DecoderModel { StreamBlocks: true })
            throw new LrkException(ErrorCodes.BadMethodOption,
                "FWSVD needs backward passes through the whole model at once: load the model without block streaming (or use another method)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var linears = Enumerable.Range(0, run.BlockCount).SelectMany(b => run.Model.BlockLinears(b)).ToArray();
        var sums = linears.ToDictionary(l => l.Name, l => zeros(l.InFeatures, dtype: float64, device: run.Device).DetachFromDisposeScope(), StringComparer.Ordinal);
        try
        {
            foreach (var linear in linears)
            {
                if (linear.Weight is null) throw new LrkException(ErrorCodes.BadMethodOption, $"{linear.Name} is already factorised: compress an uncompressed model");
                linear.Weight.requires_grad = true;
            }
            var batches = run.Ids.shape[0];
            var done = 0L;
            for (long start = 0; start < batches; start += run.Options.FisherBatchSize)
            {
                run.Token.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var length = Math.Min(run.Options.FisherBatchSize, batches - start);
                var ids = run.Ids.narrow(0, start, length).to(run.Device);
                using (enable_grad())
                {
                    var logits = run.Model.Logits(ids);
                    var vocab = logits.shape[2];
                    var loss = nn.functional.cross_entropy(
                        logits.narrow(1, 0, ids.shape[1] - 1).reshape(-1, vocab),
                        ids.narrow(1, 1, ids.shape[1] - 1).reshape(-1));
                    loss.backward();
                }
                foreach (var linear in linears)
                {
                    var grad = linear.Weight!.grad ?? throw new LrkException(ErrorCodes.Internal, $"{linear.Name} received no gradient");
                    sums[linear.Name].add_(grad.to(float64).square().sum(dim: 0));
                    grad.zero_();
                }
                done += length;
                if (start == 0 || done == batches || (done / run.Options.FisherBatchSize) % 16 == 0)
                    run.Report("fisher", 0, $"Fisher: {done}/{batches} samples");
            }
        }
        finally
        {
            foreach (var linear in linears)
            {
                if (linear.Weight is null) continue;
                linear.Weight.requires_grad = false;
                linear.Weight.grad = null;
            }
        }
        run.Seconds["fisher"] = clock.Elapsed.TotalSeconds;

        clock.Restart();
        for (var block = 0; block < run.BlockCount; block++)
        {
            run.Report("compress", block, $"block {block + 1}/{run.BlockCount}");
            foreach (var linear in run.Compressible(block).ToArray())
            {
                using var scope = NewDisposeScope();
                using var factors = FactorizeWeighted(run.WeightOnDevice(linear), ColumnWeightsFromSums(sums[linear.Name]),
                    run.Plan[linear.Name].Rank, run.Algorithm);
                run.Apply(linear, factors);
            }
        }
        foreach (var sum in sums.Values) sum.Dispose();
        run.Seconds["compress"] = clock.Elapsed.TotalSeconds;
    }
}
