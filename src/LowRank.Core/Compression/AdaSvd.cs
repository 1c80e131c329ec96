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
/// <c>‖W X_t − U Vᵀ X‖_F</c> (X the inputs propagated through the already-compressed blocks, X_t the target inputs: X
/// itself by default, or the original model's X_o, <see cref="AdaCompTarget"/>). The truncation is optimal for the
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
        var c = cross?.to(float64);
        var wc = c is null ? matmul(w, h) : matmul(w, c);   // W C  [m, n]
        var u = factors.A.to(float64);                       // U    [m, k]
        var vt = factors.B.to(float64);                      // Vᵀ   [k, n]
        trace.Add(ObjectiveWithoutConstant(wc, h, u, vt));
        if (iterations > 0)
        {
            // M = W C H⁺: the least-squares map from the compressed inputs to the targets (Eq. 9 without U⁺).
            var target = c is null ? w : PsdSolve(h, wc.T, pinvRtol).T;
            for (var round = 0; round < iterations; round++)
            {
                // Eq. 8: U = W C V (Vᵀ H V)⁺
                var vhv = matmul(matmul(vt, h), vt.T);
                u = PsdSolve(vhv, matmul(wc, vt.T).T, pinvRtol).T;
                trace.Add(ObjectiveWithoutConstant(wc, h, u, vt));
                // Eq. 9: Vᵀ = U⁺ W C H⁺ = (UᵀU)⁺ Uᵀ M
                vt = PsdSolve(matmul(u.T, u), matmul(u.T, target), pinvRtol);
                trace.Add(ObjectiveWithoutConstant(wc, h, u, vt));
            }
        }
        var (a, b) = Rebalance(u, vt);
        factors.Replace(a.to(factors.A.dtype), b.to(factors.B.dtype));
        return trace.ToArray();
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

    /// <summary><c>‖W X_t − U Vᵀ X‖² − ‖W X_t‖² = −2 tr(Uᵀ W C V) + tr(UᵀU · Vᵀ H V)</c>.</summary>
    public static double ObjectiveWithoutConstant(Tensor wc, Tensor h, Tensor u, Tensor vt)
    {
        using var scope = NewDisposeScope();
        var cross = (u * matmul(wc, vt.T)).sum().item<double>();
        var quadratic = (matmul(u.T, u) * matmul(matmul(vt, h), vt.T)).sum().item<double>();
        return quadratic - 2 * cross;
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
    /// Pipeline. (1) adaCR profiling over the original model: each block's importance from its input and output hidden
    /// states, then per-block retentions. (2) Block by block on two streams — the original model's hidden states and
    /// the compressed model's: the original block runs on the original stream (recording each linear's input X_o) and
    /// on the compressed stream (accumulating H = X Xᵀ, H_o = X_o X_oᵀ and, for the original target, C = X_o Xᵀ); each
    /// linear starts from the SVD-LLM truncation whitened with H_o (or H, <see cref="CompressionOptions.AdaSvdWhitening"/>)
    /// and is refined by adaComp against the compressed inputs; the compressed block then advances the compressed stream.
    /// With <see cref="Propagation.Original"/> there is one stream and adaComp starts at its own optimum.
    /// </summary>
    internal static void Run(CompressionRun run)
    {
        var options = run.Options;
        var target = 1.0 - options.Ratio;
        if (options.AdaSvdAdaptiveRatio) AllocateBlocks(run, target);

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
                        var w64 = weight.to(float64);
                        var scale = (matmul(w64, (originalTarget ? stats.TargetGram(linear.Name)! : gram).to(float64)) * w64).sum().item<double>();
                        run.Apply(linear, factors, kind.ToString(), 1 + trace[0] / scale, 1 + trace[^1] / scale);
                    });
            });

            if (compressed is not null) run.Timed("propagation", () => run.Sweep(block, compressed, compressed));
        }
    }

    /// <summary>adaCR: importance of every block on the original model, then per-block retentions (Eq. 11–12).</summary>
    private static void AllocateBlocks(CompressionRun run, double target)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var importance = new double[run.BlockCount];
        var samples = Math.Min(run.Samples, run.Options.AdaSvdImportanceSamples is > 0 and var n ? n : run.Samples);
        var batches = Enumerable.Range(0, (int)samples).Select(i => (long)i).Chunk(run.Options.BatchSize).ToArray();
        using (var stream = run.EmbedCalibration(samples))
        {
            for (var block = 0; block < run.BlockCount; block++)
            {
                run.Report("profile", block, $"block {block + 1}/{run.BlockCount}: importance");
                double cosSum = 0;
                long tokens = 0;
                run.Sweep(block, stream, stream, batches: batches, perBatch: (_, x, y) =>
                {
                    using var scope = NewDisposeScope();
                    var cos = nn.functional.cosine_similarity(x.to(float64).flatten(0, -2), y.to(float64).flatten(0, -2), dim: -1);
                    cosSum += cos.sum().item<double>();
                    tokens += cos.shape[0];
                });
                importance[block] = 1.0 - cosSum / tokens;
            }
        }
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
        run.Seconds["profile"] = clock.Elapsed.TotalSeconds;
    }
}
