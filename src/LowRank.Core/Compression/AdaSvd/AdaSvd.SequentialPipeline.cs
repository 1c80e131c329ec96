using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>The sequential pipeline: group by group on the compressed model's own inputs (the default; see <see cref="RunSequential"/>).</summary>
public static partial class AdaSvd
{
    /// <summary>
    /// The sequential pipeline. (1) The original model, once for all blocks (<see cref="AdaSvdOriginalPass"/>): each block's
    /// input Grams <c>H_o</c> (kept in fp32) and its adaCR importance, then per-block retentions. (2) Block by block on the
    /// compressed model's hidden states: every linear starts from the SVD-LLM truncation whitened with <c>H_o</c>; then,
    /// one linear group at a time (<see cref="IStagedDecoder"/>: q/k/v, o, gate/up, down), the group's inputs are collected
    /// over all calibration batches — they went through the compressed earlier blocks and the already-refitted earlier
    /// groups of this block —, adaComp refits the group to them (<c>H = X Xᵀ</c>, target <c>W X</c>), and the group runs
    /// to produce the next group's inputs. The block's output is the next block's input.
    /// <para>Why group by group: compared with gathering a block's statistics by running its dense weights on the
    /// compressed stream and then running it again compressed (the two-stream pipeline), every layer is fitted to exactly
    /// the inputs it will see, and each block costs one low-rank pass plus the Grams instead of a dense pass, a low-rank
    /// pass and the Grams, which is what brings AdaSVD's time near SVD-LLM's (BENCHMARKS.md, "GPU"). Group inputs
    /// of a block are kept like hidden states (on the device while they fit
    /// <see cref="CompressionOptions.DeviceHiddenStateBytes"/>).</para>
    /// </summary>
    private static void RunSequential(CompressionRun run, IStagedDecoder staged)
    {
        var options = run.Options;
        var whitenOriginal = options.AdaSvdWhitening == AdaCompWhitening.Original;
        var batches = run.Batches(options.AdaSvdBucketSize);
        OriginalGrams? stored = null;
        try
        {
            if (whitenOriginal && OriginalGrams.Wanted(run, staged, out var reason))
            {
                stored = ProfileOriginal(run, staged, batches);
                run.OriginalPass = "once for all blocks: " + reason;
            }
            else
            {
                run.OriginalPass = whitenOriginal ? "per block: " + OriginalGrams.Reason(run, staged) : "none (compressed whitening)";
                if (options.AdaSvdAdaptiveRatio) run.Follow(PlanRetentions(run, MeasureImportance(run)));
            }

            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var compressed = run.EmbedCalibration();
            using var original = whitenOriginal && stored is null ? run.EmbedCalibration() : null;
            if (stored is not null) CompressWithStoredGrams(run, staged, stored, compressed, batches);
            else
            {
                run.Overlap = "off (the original model's Grams of block i+1 come from a pass after block i)";
                for (var block = 0; block < run.BlockCount; block++)
                {
                    run.Report("compress", block, $"block {block + 1}/{run.BlockCount}");
                    using (run.Model.HoldOnDevice(block))
                    {
                        var compressible = run.Compressible(block).ToArray();
                        using var starts = new StartFactors();
                        if (whitenOriginal)
                        {
                            using var grams = OriginalBlockGrams(run, block, original!, batches);
                            run.Timed("decomposition", () => starts.Factorize(run, compressible, grams));
                        }
                        CompressGroups(run, staged, block, compressed, batches, compressible.ToHashSet(), starts);
                    }
                    run.BlockCompleted?.Invoke(block);
                }
            }
            run.Seconds["compress"] = clock.Elapsed.TotalSeconds;
        }
        finally
        {
            stored?.Dispose();
        }
    }

    /// <summary>
    /// Pass (2) with every block's original Grams at hand: block i+1's starting truncations do not depend on block i, so
    /// with <see cref="CompressionOptions.DecompositionOverlap"/> they are computed on a <see cref="DecompositionWorker"/>
    /// (on CUDA its own stream) while block i's groups are refitted and run: the starts' fp64 eigendecompositions are a
    /// large part of the pass, and the group passes are GEMMs (times in BENCHMARKS.md, "GPU").
    /// <para>Stream rules (<see cref="LowRank.Torch.CudaStreams"/>): block i+1 is held and its Grams handed to the worker
    /// after this thread's stream was synchronised; the worker frees the Grams after synchronising its own stream; the
    /// starts come back when <see cref="DecompositionWorker.Wait"/> returns (the worker synchronised), and this thread
    /// synchronises its stream before it frees any of them (<see cref="Refine"/> and the end of a block).</para>
    /// </summary>
    private static void CompressWithStoredGrams(CompressionRun run, IStagedDecoder staged, OriginalGrams stored, HiddenStates compressed, long[][] batches)
    {
        using var worker = DecompositionWorker.Create(run.Options.DecompositionOverlap, run.Device, out var reason);
        run.Overlap = reason;
        // Block b's hold, its compressible linears and its starts; the next block's are being made while b is compressed.
        (IDisposable Hold, LinearWeight[] Linears, StartFactors Starts)? next = null;
        try
        {
            next = Prepare(0);
            for (var block = 0; block < run.BlockCount; block++)
            {
                run.Report("compress", block, $"block {block + 1}/{run.BlockCount}");
                if (worker is not null) run.Timed("decomposition_wait", worker.Wait);
                var current = next!.Value;
                next = null;
                try
                {
                    if (block + 1 < run.BlockCount) next = Prepare(block + 1);
                    CompressGroups(run, staged, block, compressed, batches, current.Linears.ToHashSet(), current.Starts);
                }
                finally
                {
                    LowRank.Torch.CudaStreams.SynchronizeThisThread(run.Device);
                    current.Starts.Dispose();
                    current.Hold.Dispose();
                }
                run.BlockCompleted?.Invoke(block);
            }
        }
        finally
        {
            // A failure leaves at most the next block in flight: let the worker finish with it before freeing it.
            try
            {
                worker?.Wait();
            }
            catch (Exception) when (next is not null)
            {
                // The failure that stopped the loop is the one to report.
            }
            if (next is { } pending)
            {
                pending.Starts.Dispose();
                pending.Hold.Dispose();
            }
        }

        (IDisposable, LinearWeight[], StartFactors) Prepare(int block)
        {
            var hold = run.Model.HoldOnDevice(block);
            var linears = run.Compressible(block).ToArray();
            var starts = new StartFactors();
            var grams = stored.Take(block);
            if (worker is null)
            {
                using (grams) run.Timed("decomposition", () => starts.Factorize(run, linears, grams));
                return (hold, linears, starts);
            }
            worker.Start(() =>
            {
                try
                {
                    run.Timed("decomposition", () => starts.Factorize(run, linears, grams));
                }
                finally
                {
                    LowRank.Torch.CudaStreams.SynchronizeThisThread(run.Device);
                    grams.Dispose();
                }
            });
            return (hold, linears, starts);
        }
    }

    /// <summary>
    /// Block <paramref name="block"/> group by group on the compressed stream (updated in place to the block's output):
    /// collect a group's input Gram over every batch, refit the group (from <paramref name="starts"/>, or from the
    /// truncation whitened with that Gram), run the group to get the next group's inputs.
    /// </summary>
    private static void CompressGroups(CompressionRun run, IStagedDecoder staged, int block, HiddenStates compressed, long[][] batches,
        IReadOnlySet<LinearWeight> compressible, StartFactors starts)
    {
        var options = run.Options;
        var groups = staged.LinearGroups(block);
        var stats = NewStatistics(options);
        HiddenStates? inputs = null;
        try
        {
            // Group 0's input is a function of the block input alone (a norm): computed again in the first step's pass.
            run.Timed("propagation", () => Pass(batches, indices =>
            {
                var state = staged.EnterBlock(block, compressed.Batch(indices, run.Device));
                Observe(stats, groups[0], state.Input!);
            }));
            for (var group = 0; group < groups.Count; group++)
            {
                run.Report("compress", block, $"block {block + 1}/{run.BlockCount}: adaComp, group {group + 1}/{groups.Count}");
                var current = stats;
                run.Timed("refinement", () => RefitGroup(run, groups[group].Where(compressible.Contains).ToArray(), current, starts));
                stats.Dispose();
                stats = NewStatistics(options);

                var last = group == groups.Count - 1;
                var next = last ? null : AllocateInputs(run, compressed, inputs, groups[group + 1][0].InFeatures);
                var step = group;
                var observed = stats;
                run.Timed("propagation", () => Pass(batches, indices =>
                {
                    var residual = compressed.Batch(indices, run.Device);
                    var state = step == 0 ? staged.EnterBlock(block, residual) : new BlockState(residual, inputs!.Batch(indices, run.Device));
                    var after = staged.StepBlock(block, step, state);
                    // The residual is written back in place: each batch's rows depend on that batch alone.
                    if (!ReferenceEquals(after.Residual, residual)) compressed.Write(indices, after.Residual);
                    if (after.Input is { } input)
                    {
                        Observe(observed, groups[step + 1], input);
                        next!.Write(indices, input);
                    }
                }));
                inputs?.Dispose();
                inputs = next;
            }
        }
        finally
        {
            stats.Dispose();
            inputs?.Dispose();
        }

        void Pass(long[][] all, Action<long[]> body)
        {
            foreach (var indices in all)
            {
                run.Token.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                body(indices);
            }
        }
    }

    private static LinearStatistics NewStatistics(CompressionOptions options) =>
        new(_ => true, bucketSize: options.AdaSvdBucketSize, precision: options.GramPrecision, cross: false);

    private static void Observe(LinearStatistics stats, IReadOnlyList<LinearWeight> group, Tensor input)
    {
        var observer = stats.Observer();
        foreach (var linear in group) observer(linear, input);
    }

    /// <summary>Storage for the next group's inputs: on the device while the calibration stream and the group inputs
    /// held there stay within the hidden-state limit, else on the host.</summary>
    private static HiddenStates AllocateInputs(CompressionRun run, HiddenStates stream, HiddenStates? held, long width)
    {
        var dtype = run.Model is DecoderModel decoder ? decoder.ComputeDtype : ScalarType.Float32;
        var onDevice = (stream.StorageDevice.type == run.Device.type ? stream.Bytes : 0) + (held is { } h && h.StorageDevice.type == run.Device.type ? h.Bytes : 0);
        var limit = run.Options.DeviceHiddenStateLimit(run.Device) - (run.Device.type == DeviceType.CPU ? 0 : onDevice);
        var storage = HiddenStates.ChooseStorage(run.Device, run.Samples, run.SequenceLength, width, dtype, Math.Max(0, limit));
        return HiddenStates.Allocate(run.Samples, run.SequenceLength, width, dtype, storage);
    }

    /// <summary>adaComp on one group's linears against their collected Gram: from the stored start, or from the truncation
    /// whitened with the Gram itself (<see cref="AdaCompWhitening.Compressed"/>, where adaComp cannot improve on it).</summary>
    private static void RefitGroup(CompressionRun run, LinearWeight[] linears, LinearStatistics stats, StartFactors starts)
    {
        var options = run.Options;
        void Refit(LinearWeight linear, LowRankFactors factors, string kind)
        {
            using var scope = NewDisposeScope();
            var weight = run.WeightOnDevice(linear);
            var gram = stats.Gram(linear.Name);
            var trace = Refine(weight, gram, null, factors, options.AdaSvdIterations, options.AdaSvdPinvRtol);
            // Relative objective ‖W X − U Vᵀ X‖² / ‖W X‖².
            var scale = OutputEnergy(weight, gram);
            run.Apply(linear, factors, kind, 1 + trace[0] / scale, 1 + trace[^1] / scale);
        }
        if (starts.Count == 0)
        {
            SvdLlm.FactorizeBlock(run, linears, linear => stats.Gram(linear.Name), (linear, factors, kind) => Refit(linear, factors, kind.ToString()));
            return;
        }
        foreach (var linear in linears)
        {
            var start = starts.Of(linear.Name);
            Refit(linear, start, start.Whitening ?? "");
        }
    }

    /// <summary>Pass (1): every block of the original model over every calibration batch, keeping each block's input Grams
    /// (fp32, on the compute device) and its adaCR importance on the first <see cref="CompressionOptions.AdaSvdImportanceSamples"/>
    /// samples; then the retention plan.</summary>
    private static OriginalGrams ProfileOriginal(CompressionRun run, IStagedDecoder staged, long[][] batches)
    {
        var options = run.Options;
        var importanceSamples = ImportanceSamples(run);
        var importance = new double[run.BlockCount];
        var stored = new OriginalGrams(run.BlockCount);
        try
        {
            using var stream = run.EmbedCalibration();
            for (var block = 0; block < run.BlockCount; block++)
            {
                run.Report("profile", block, $"block {block + 1}/{run.BlockCount}: original model");
                var index = block;
                run.Timed("statistics", () =>
                {
                    using var stats = NewStatistics(options);
                    double cosSum = 0;
                    long tokens = 0;
                    run.Sweep(index, stream, stream, stats.Observer, batches: batches, perBatch: (indices, x, y) =>
                    {
                        if (!options.AdaSvdAdaptiveRatio) return;
                        var (sum, count) = CosineSum(x, y, indices, importanceSamples);
                        cosSum += sum;
                        tokens += count;
                    });
                    importance[index] = tokens > 0 ? 1.0 - cosSum / tokens : 0;
                    stored.Add(index, BlockGrams.From(stats, run.Model.BlockLinears(index), run.Device));
                });
            }
            if (options.AdaSvdAdaptiveRatio) run.Follow(PlanRetentions(run, importance));
            return stored;
        }
        catch
        {
            stored.Dispose();
            throw;
        }
    }

    /// <summary>One block's original-model Grams from the original stream (advanced in place), when they were not stored.</summary>
    private static BlockGrams OriginalBlockGrams(CompressionRun run, int block, HiddenStates original, long[][] batches)
    {
        BlockGrams? grams = null;
        run.Timed("statistics", () =>
        {
            using var stats = NewStatistics(run.Options);
            run.Sweep(block, original, original, stats.Observer, batches: batches);
            grams = BlockGrams.From(stats, run.Model.BlockLinears(block), run.Device);
        });
        return grams!;
    }
}
