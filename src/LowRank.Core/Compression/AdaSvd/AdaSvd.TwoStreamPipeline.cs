using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>The two-stream pipeline, for the original target or original propagation (see <see cref="RunStreams"/>).</summary>
public static partial class AdaSvd
{
    /// <summary>
    /// The two-stream pipeline, for the original target or original propagation. (1) adaCR profiling over the original
    /// model: each block's importance from its input and output hidden states, then per-block retentions. (2) Block by
    /// block on two streams — the original model's hidden states and
    /// the compressed model's: the original block runs on the original stream (recording each linear's input X_o) and
    /// on the compressed stream (accumulating H = X Xᵀ, H_o = X_o X_oᵀ and, for the original target, C = X_o Xᵀ); each
    /// linear starts from the SVD-LLM truncation whitened with H_o (or H, <see cref="CompressionOptions.AdaSvdWhitening"/>)
    /// and is refined by adaComp against the compressed inputs; the compressed block then advances the compressed stream.
    /// With <see cref="Propagation.Original"/> there is one stream and adaComp starts at its own optimum.
    /// </summary>
    private static void RunStreams(CompressionRun run)
    {
        var options = run.Options;
        run.OriginalPass = "two streams";
        if (options.AdaSvdAdaptiveRatio) run.Follow(PlanRetentions(run, MeasureImportance(run)));

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var twoStreams = options.EffectivePropagation == Propagation.Compressed;
        var originalTarget = twoStreams && options.AdaSvdTarget == AdaCompTarget.Original;
        using var original = run.EmbedCalibration();
        using var compressed = twoStreams ? original.Clone() : null;
        var statsBatches = run.Batches(options.AdaSvdBucketSize);
        for (var block = 0; block < run.BlockCount; block++)
        {
            run.Report("compress", block, $"block {block + 1}/{run.BlockCount}: statistics");
            CompressBlock(block);
            run.BlockCompleted?.Invoke(block);
        }
        run.Seconds["compress"] = clock.Elapsed.TotalSeconds;

        void CompressBlock(int block)
        {
            using var held = run.Model.HoldOnDevice(block);
            using var stats = new LinearStatistics(_ => true, bucketSize: options.AdaSvdBucketSize, precision: options.GramPrecision, cross: originalTarget);
            // Both streams advance in place (a batch's outputs depend on its own inputs only).
            run.Timed("statistics", () =>
            {
                foreach (var indices in statsBatches)
                {
                    run.Token.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    if (compressed is null)
                    {
                        original.Write(indices, run.Model.RunBlock(block, original.Batch(indices, run.Device), stats.Observer()));
                        continue;
                    }
                    // The cross Gram pairs each batch's original and compressed inputs, so those are recorded first;
                    // otherwise the original inputs' Gram is accumulated as they pass.
                    var originalObserver = originalTarget ? stats.Recorder() : stats.TargetObserver();
                    original.Write(indices, run.Model.RunBlock(block, original.Batch(indices, run.Device), originalObserver));
                    run.Model.RunBlock(block, compressed.Batch(indices, run.Device), stats.Observer());
                }
            });

            run.Report("compress", block, $"block {block + 1}/{run.BlockCount}: adaComp");
            run.Timed("decomposition", () =>
            {
                SvdLlm.FactorizeBlock(run, run.Compressible(block).ToArray(), linear =>
                    options.AdaSvdWhitening == AdaCompWhitening.Original ? stats.TargetGram(linear.Name) ?? stats.Gram(linear.Name) : stats.Gram(linear.Name),
                    (linear, factors, kind) =>
                    {
                        using var scope = NewDisposeScope();
                        var weight = run.WeightOnDevice(linear);
                        var gram = stats.Gram(linear.Name);
                        var trace = Refine(weight, gram, originalTarget ? stats.Cross(linear.Name) : null, factors, options.AdaSvdIterations, options.AdaSvdPinvRtol);
                        // Relative objective ‖W X_t − U Vᵀ X‖² / ‖W X_t‖², with ‖W X_t‖² = tr(W T Wᵀ), T = X_t X_tᵀ.
                        var scale = OutputEnergy(weight, originalTarget ? stats.TargetGram(linear.Name)! : gram);
                        run.Apply(linear, factors, kind.ToString(), 1 + trace[0] / scale, 1 + trace[^1] / scale);
                    });
            });

            if (compressed is not null) run.Timed("propagation", () => run.Sweep(block, compressed, compressed));
        }
    }
}
