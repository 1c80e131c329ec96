using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>Which inputs adaComp's target outputs are computed from.</summary>
public enum AdaCompTarget
{
    /// <summary>Target <c>W x_orig</c>: the layer's output in the uncompressed model. The compressed layer sees
    /// <c>x_comp</c> (inputs propagated through the already-compressed earlier blocks) and is fitted to undo their error.</summary>
    Original,
    /// <summary>Target <c>W x_comp</c>: the layer's own dense output on the inputs it will really see. Starting from a
    /// truncation whitened with the original inputs (<see cref="AdaCompWhitening.Original"/>), adaComp re-fits it to them;
    /// with <see cref="AdaCompWhitening.Compressed"/> the start is already optimal for this target and adaComp cannot move it.</summary>
    Compressed,
}

/// <summary>Which inputs' Gram whitens adaComp's starting truncation.</summary>
public enum AdaCompWhitening
{
    /// <summary><c>H_o = X_o X_oᵀ</c> of the original model's inputs (SVD-LLM's profile, as methods.md describes AdaSVD):
    /// adaComp then compensates the truncation for the drift of the compressed model's inputs.</summary>
    Original,
    /// <summary><c>H = X Xᵀ</c> of the compressed model's inputs: the start is SVD-LLM on the compressed stream.</summary>
    Compressed,
}

/// <summary>
/// AdaSVD (Li et al., 2025, "AdaSVD: Adaptive Singular Value Decomposition for Large Language Models").
/// <para><b>adaComp</b> (§3.2, Eq. 7–10): starting from the SVD-LLM truncation <c>W ≈ U Vᵀ</c> whitened with the original
/// model's inputs (the profile SVD-LLM takes), alternately re-fit U and V by least squares to reduce
/// <c>‖W X_t − U Vᵀ X‖_F</c> (X the inputs the compressed model feeds the layer — through the already-compressed
/// blocks and, in the default pipeline, the already-refitted earlier linears of its own block (<see cref="Run"/>) —;
/// X_t the target inputs: X itself by default, or the original model's X_o, <see cref="AdaCompTarget"/>). The truncation is optimal for the
/// inputs it was whitened with; adaComp compensates it for the inputs the compressed model really feeds the layer.
/// We use the exact Gram form of the normal equations, so no token matrix is held:
/// with <c>H = X Xᵀ</c> and <c>C = X_t Xᵀ</c>,
/// <c>U ← W C V (Vᵀ H V)⁺</c> (Eq. 8) and <c>Vᵀ ← U⁺ W C H⁺</c> (Eq. 9), the pseudo-inverses applied as Cholesky solves
/// (<see cref="PsdSolve"/>). With <c>X_t = X</c> and <c>H = L Lᵀ</c> the U-update is the paper's memory-light
/// <c>U = (W L)(Vᵀ L)⁺</c>. Each half-step solves its subproblem exactly, so the objective never increases; with
/// enough rounds it reaches SVD-LLM whitened with H itself (<see cref="AdaCompWhitening.Compressed"/>), the optimum.</para>
/// <para><b>Stack-of-batch</b> (§3.2): the paper shuffles calibration samples and averages them in buckets so more
/// samples fit in memory. The Gram form does not need that (every token is folded into H and C); a bucket size
/// &gt; 1 reproduces the paper's averaged statistics for comparison (see <see cref="CompressionOptions.AdaSvdBucketSize"/>).</para>
/// <para><b>adaCR</b> (§3.3, Eq. 11–12): per-block importance <c>I_l = 1 − cos(h_in, h_out)</c> on calibration data
/// (the published profile: first block most important, last second, a bowl between), normalised by its mean;
/// <c>ρ_l = mrr + I_l·(trr − mrr)</c>, clipped to the feasible range and shifted so the mean is trr exactly.</para>
/// </summary>
public static class AdaSvd
{
    public const int DefaultIterations = 1;
    public const double DefaultRetentionGap = 0.05;
    public const double DefaultPinvRtol = 1e-10;
    public const int DefaultImportanceSamples = 64;

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

    /// <summary>
    /// Pipeline. adaComp fits each layer to the inputs the compressed model really feeds it. With the default options
    /// (<see cref="Propagation.Compressed"/>, target <see cref="AdaCompTarget.Compressed"/>) that is taken literally, group
    /// by group (<see cref="RunSequential"/>); the other combinations run the two-stream pipeline (<see cref="RunStreams"/>).
    /// </summary>
    internal static void Run(CompressionRun run)
    {
        var options = run.Options;
        if (options.EffectivePropagation == Propagation.Compressed && options.AdaSvdTarget == AdaCompTarget.Compressed && run.Model is IStagedDecoder staged)
            RunSequential(run, staged);
        else
            RunStreams(run);
    }

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
    /// pass and the Grams. Measured (BENCHMARKS.md, issue 8) on the LLaMA-7B shape that is what brings AdaSVD within
    /// 1.5× of SVD-LLM's time. Group inputs of a block are kept like hidden states (on the device while they fit
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
                if (options.AdaSvdAdaptiveRatio) PlanRetentions(run, MeasureImportance(run));
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
    /// (on CUDA its own stream) while block i's groups are refitted and run. Measured on the H100 (BENCHMARKS.md) the
    /// fp64 eigendecompositions of the starts are the larger part of the pass, and the group passes are GEMMs.
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

    /// <summary>A block's starting truncations (SVD-LLM whitened with the original model's Grams), by linear.</summary>
    private sealed class StartFactors : IDisposable
    {
        private readonly Dictionary<string, LowRankFactors> byLinear = new(StringComparer.Ordinal);

        public int Count => byLinear.Count;

        public LowRankFactors Of(string linear) => byLinear[linear];

        public void Factorize(CompressionRun run, IReadOnlyList<LinearWeight> linears, BlockGrams grams) =>
            SvdLlm.FactorizeBlock(run, linears, linear => grams.Of(linear.Name), (linear, factors, kind) => byLinear[linear.Name] = factors.Detach(kind));

        public void Dispose()
        {
            foreach (var factors in byLinear.Values) factors.Dispose();
            byLinear.Clear();
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
            if (options.AdaSvdAdaptiveRatio) PlanRetentions(run, importance);
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
        if (options.AdaSvdAdaptiveRatio) PlanRetentions(run, MeasureImportance(run));

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

    /// <summary>adaCR (Eq. 12): per-block retentions from the importance, and the rank plan.</summary>
    private static void PlanRetentions(CompressionRun run, double[] importance)
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
        run.Plan = RankPlan.FromRetentions(run.Shapes, byLinear, run.Options.Ratio, run.Options.RankMultiple);
        for (var block = 0; block < run.BlockCount; block++)
            run.SetBlockReport(new BlockReport { Block = block, Importance = normalised[block], Retention = retentions[block] });
    }
}
