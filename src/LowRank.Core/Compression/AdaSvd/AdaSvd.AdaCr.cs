using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>adaCR (§3.3, Eq. 11–12): block importance and the per-block retentions it gives (see <see cref="AdaSvd"/>).</summary>
public static partial class AdaSvd
{
    /// <summary>adaCR importance of one block from its input and output hidden states on the same tokens:
    /// <c>1 − mean_t cos(h_in,t, h_out,t)</c>.</summary>
    public static double Importance(Tensor blockInput, Tensor blockOutput)
    {
        using var scope = NewDisposeScope();
        var cos = nn.functional.cosine_similarity(blockInput.to(float64).flatten(0, -2), blockOutput.to(float64).flatten(0, -2), dim: -1);
        return 1.0 - cos.mean().item<double>();
    }

    /// <summary>
    /// adaCR (Eq. 12): <c>ρ_l = mrr + (I_l / mean I)·(trr − mrr)</c>, then clipped to [<paramref name="lower"/>ᵢ, 1] and shifted so
    /// the parameter-weighted mean retention is exactly <paramref name="targetRetention"/>.
    /// </summary>
    public static double[] BlockRetentions(IReadOnlyList<double> importance, double targetRetention, double minRetention,
        IReadOnlyList<double> blockParameters, IReadOnlyList<double> lower)
    {
        var mean = importance.Average();
        var raw = importance.Select(i => minRetention + (mean > 0 ? i / mean : 1.0) * (targetRetention - minRetention)).ToArray();
        return RatioMath.ClipAndRedistribute(raw, blockParameters, lower, blockParameters.Select(_ => 1.0).ToArray(),
            targetRetention, RatioMath.Redistribution.Shift);
    }

    /// <summary>Σ cos(x_t, y_t) over the tokens of the batch's samples whose index is below <paramref name="limit"/>.</summary>
    private static (double Sum, long Count) CosineSum(Tensor x, Tensor y, long[] indices, long limit)
    {
        using var scope = NewDisposeScope();
        var rows = Enumerable.Range(0, indices.Length).Where(i => indices[i] < limit).Select(i => (long)i).ToArray();
        if (rows.Length == 0) return (0, 0);
        if (rows.Length < indices.Length)
        {
            var keep = tensor(rows, device: x.device);
            x = x.index_select(0, keep);
            y = y.index_select(0, keep);
        }
        var cos = nn.functional.cosine_similarity(x.to(float64).flatten(0, -2), y.to(float64).flatten(0, -2), dim: -1);
        return (cos.sum().item<double>(), cos.shape[0]);
    }

    private static long ImportanceSamples(CompressionRun run) =>
        Math.Min(run.Samples, run.Options.AdaSvdImportanceSamples is > 0 and var n ? n : run.Samples);

    /// <summary>adaCR's profile pass (Eq. 11): every block's importance on the original model, from the first
    /// <see cref="CompressionOptions.AdaSvdImportanceSamples"/> samples.</summary>
    private static double[] MeasureImportance(CompressionRun run)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var importance = new double[run.BlockCount];
        var samples = ImportanceSamples(run);
        var batches = Enumerable.Range(0, (int)samples).Select(i => (long)i).Chunk(run.Options.BatchSize).ToArray();
        using (var stream = run.EmbedCalibration(samples))
        {
            for (var block = 0; block < run.BlockCount; block++)
            {
                run.Report("profile", block, $"block {block + 1}/{run.BlockCount}: importance");
                double cosSum = 0;
                long tokens = 0;
                run.Sweep(block, stream, stream, batches: batches, perBatch: (indices, x, y) =>
                {
                    var (sum, count) = CosineSum(x, y, indices, samples);
                    cosSum += sum;
                    tokens += count;
                });
                importance[block] = 1.0 - cosSum / tokens;
            }
        }
        run.Seconds["profile"] = clock.Elapsed.TotalSeconds;
        return importance;
    }

    /// <summary>adaCR (Eq. 12): per-block retentions from the importance (recorded in the block reports); returns the rank plan.</summary>
    private static RankPlan PlanRetentions(CompressionRun run, double[] importance)
    {
        var target = 1.0 - run.Options.Ratio;
        var mean = importance.Average();
        var normalised = importance.Select(i => mean > 0 ? i / mean : 1.0).ToArray();
        var perBlock = Enumerable.Range(0, run.BlockCount).Select(b => run.Shapes.Where(s => s.Block == b).ToArray()).ToArray();
        var minRetention = run.Options.AdaSvdMinRetention ?? Math.Max(0.01, target - run.Options.AdaSvdRetentionGap);
        var retentions = BlockRetentions(importance, target, minRetention,
            perBlock.Select(b => (double)b.Sum(s => s.DenseParameters)).ToArray(),
            perBlock.Select(b => b.Max(s => RatioMath.MinRetention(s.OutFeatures, s.InFeatures))).ToArray());
        var byLinear = run.Shapes.ToDictionary(s => s.Name, s => retentions[s.Block], StringComparer.Ordinal);
        for (var block = 0; block < run.BlockCount; block++)
            run.SetBlockReport(new BlockReport { Block = block, Importance = normalised[block], Retention = retentions[block] });
        return RankPlan.FromRetentions(run.Shapes, byLinear, run.Options.Ratio, run.Options.RankMultiple);
    }
}
