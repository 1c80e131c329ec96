using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>Which inputs adaComp's target outputs are computed from.</summary>
public enum AdaCompTarget
{
    /// <summary>Target <c>W x_orig</c>: the layer's output in the uncompressed model. The compressed layer sees
    /// <c>x_comp</c> (inputs propagated through the already-compressed earlier blocks) and is fitted to undo their error.</summary>
    Original,
    /// <summary>Target <c>W x_comp</c>: then the SVD-LLM truncation is already optimal and adaComp cannot improve it.</summary>
    Compressed,
}

/// <summary>
/// AdaSVD (Li et al., 2025, "AdaSVD: Adaptive Singular Value Decomposition for Large Language Models").
/// <para><b>adaComp</b> (§3.2, Eq. 7–10): starting from the whitened truncation <c>W ≈ U Vᵀ</c>, alternately re-fit
/// U and V by least squares to reduce <c>‖W X_t − U Vᵀ X‖_F</c> (X the compressed-model inputs, X_t the target inputs).
/// We use the exact Gram form of the normal equations, so no token matrix is held:
/// with <c>H = X Xᵀ</c> and <c>C = X_t Xᵀ</c>,
/// <c>U ← W C V (Vᵀ H V)⁺</c> (Eq. 8) and <c>Vᵀ ← U⁺ W C H⁺</c> (Eq. 9), pseudo-inverses via SVD
/// (<c>torch.linalg.pinv</c>). With <c>X_t = X</c> and <c>H = L Lᵀ</c> the U-update is the paper's memory-light
/// <c>U = (W L)(Vᵀ L)⁺</c>. Each half-step solves its subproblem exactly, so the objective never increases.</para>
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

    /// <summary>
    /// Runs <paramref name="iterations"/> rounds of (U-update, V-update) on <paramref name="factors"/> in place.
    /// <paramref name="cross"/> is <c>C = X_t Xᵀ</c>; null means <c>C = H</c> (target = compressed inputs).
    /// Returns the Gram-form objective (without the constant <c>tr(W X_t X_tᵀ Wᵀ)</c>) after each half-step, first entry = start.
    /// </summary>
    public static double[] Refine(Tensor weight, Tensor gram, Tensor? cross, LowRankFactors factors, int iterations, double pinvRtol)
    {
        var trace = new List<double>();
        using var scope = NewDisposeScope();
        var w = weight.to(float64);
        var h = gram.to(float64);
        h = (h + h.T) * 0.5;
        var c = cross?.to(float64) ?? h;
        var wc = matmul(w, c);                       // W C  [m, n]
        var u = factors.A.to(float64);               // U    [m, k]
        var vt = factors.B.to(float64);              // Vᵀ   [k, n]
        trace.Add(ObjectiveWithoutConstant(wc, h, u, vt));
        if (iterations > 0)
        {
            var hPinv = linalg.pinv(h, rtol: pinvRtol, hermitian: true);
            for (var round = 0; round < iterations; round++)
            {
                // Eq. 8: U = W C V (Vᵀ H V)⁺
                var vhv = matmul(matmul(vt, h), vt.T);
                u = matmul(matmul(wc, vt.T), linalg.pinv((vhv + vhv.T) * 0.5, rtol: pinvRtol, hermitian: true));
                trace.Add(ObjectiveWithoutConstant(wc, h, u, vt));
                // Eq. 9: Vᵀ = U⁺ W C H⁺
                vt = matmul(matmul(linalg.pinv(u, rtol: pinvRtol), wc), hPinv);
                trace.Add(ObjectiveWithoutConstant(wc, h, u, vt));
            }
        }
        var (a, b) = Rebalance(u, vt);
        factors.Replace(a.to(factors.A.dtype), b.to(factors.B.dtype));
        return trace.ToArray();
    }

    /// <summary><c>‖W X_t − U Vᵀ X‖² − ‖W X_t‖² = −2 tr(Uᵀ W C V) + tr(UᵀU · Vᵀ H V)</c>.</summary>
    public static double ObjectiveWithoutConstant(Tensor wc, Tensor h, Tensor u, Tensor vt)
    {
        using var scope = NewDisposeScope();
        var cross = (u * matmul(wc, vt.T)).sum().item<double>();
        var quadratic = (matmul(u.T, u) * matmul(matmul(vt, h), vt.T)).sum().item<double>();
        return quadratic - 2 * cross;
    }

    /// <summary>Same product U Vᵀ, split as <c>A = Q_u U_c Σ^½</c>, <c>B = Σ^½ V_cᵀ Q_vᵀ</c> (QR of both factors and an SVD of
    /// the k×k core), so A and B have balanced norms like the other methods' factors.</summary>
    private static (Tensor A, Tensor B) Rebalance(Tensor u, Tensor vt)
    {
        var (qu, ru) = linalg.qr(u);
        var (qv, rv) = linalg.qr(vt.T);
        var (uc, s, vch) = linalg.svd(matmul(ru, rv.T), fullMatrices: false);
        var root = s.sqrt();
        return (matmul(qu, uc) * root.unsqueeze(0), root.unsqueeze(1) * matmul(vch, qv.T));
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
    /// the compressed model's: the original block runs on the original stream (recording each linear's input X_t) and
    /// on the compressed stream (accumulating H = X Xᵀ and C = X_t Xᵀ); each linear starts from the SVD-LLM whitened
    /// truncation with H and is refined by adaComp; the compressed block then advances the compressed stream.
    /// </summary>
    internal static void Run(CompressionRun run)
    {
        var options = run.Options;
        var target = 1.0 - options.Ratio;
        if (options.AdaSvdAdaptiveRatio) AllocateBlocks(run, target);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var twoStreams = options.AdaSvdTarget == AdaCompTarget.Original && options.EffectivePropagation == Propagation.Compressed;
        using var original = run.EmbedCalibration();
        using var compressed = options.EffectivePropagation == Propagation.Compressed ? original.Clone() : null;
        var statsBatches = run.Batches(options.AdaSvdBucketSize);
        for (var block = 0; block < run.BlockCount; block++)
        {
            run.Report("compress", block, $"block {block + 1}/{run.BlockCount}: statistics");
            using var held = run.Model.HoldOnDevice(block);
            using var stats = new LinearStatistics(_ => true, bucketSize: options.AdaSvdBucketSize, tf32: options.GramTf32);
            using var nextOriginal = original.EmptyLike();
            run.Timed("statistics", () =>
            {
                foreach (var indices in statsBatches)
                {
                    run.Token.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    if (compressed is null)
                    {
                        nextOriginal.Write(indices, run.Model.RunBlock(block, original.Batch(indices, run.Device), stats.Observer()));
                        continue;
                    }
                    var originalOut = run.Model.RunBlock(block, original.Batch(indices, run.Device), twoStreams ? stats.Recorder() : null);
                    nextOriginal.Write(indices, originalOut);
                    run.Model.RunBlock(block, compressed.Batch(indices, run.Device), stats.Observer());
                }
            });

            run.Report("compress", block, $"block {block + 1}/{run.BlockCount}: adaComp");
            run.Timed("decomposition", () =>
            {
                foreach (var linear in run.Compressible(block).ToArray())
                {
                    using var scope = NewDisposeScope();
                    var weight = run.WeightOnDevice(linear);
                    var gram = stats.Gram(linear.Name);
                    var cross = twoStreams ? stats.Cross(linear.Name) : null;
                    using var factors = SvdLlm.Factorize(weight, gram, run.Plan[linear.Name].Rank, run.Algorithm, options.WhiteningEpsilon, out var kind);
                    var trace = Refine(weight, gram, cross, factors, options.AdaSvdIterations, options.AdaSvdPinvRtol);
                    // Relative objective ‖W X_t − U Vᵀ X‖² / ‖W X_t‖², with ‖W X_t‖² = tr(W T Wᵀ), T = X_t X_tᵀ (= H without a target stream).
                    var w64 = weight.to(float64);
                    var scale = matmul(matmul(w64, stats.TargetGram(linear.Name) ?? gram), w64.T).trace().item<double>();
                    run.Apply(linear, factors, kind.ToString(), 1 + trace[0] / scale, 1 + trace[^1] / scale);
                }
            });

            if (compressed is not null)
            {
                using var nextCompressed = compressed.EmptyLike();
                run.Timed("propagation", () => run.Sweep(block, compressed, nextCompressed));
                compressed.ReplaceWith(nextCompressed);
            }
            original.ReplaceWith(nextOriginal);
        }
        run.Seconds["compress"] = clock.Elapsed.TotalSeconds;
    }

    /// <summary>adaCR: importance of every block on the original model, then per-block retentions (Eq. 11–12).</summary>
    private static void AllocateBlocks(CompressionRun run, double target)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var importance = new double[run.BlockCount];
        using (var stream = run.EmbedCalibration())
        {
            for (var block = 0; block < run.BlockCount; block++)
            {
                run.Report("profile", block, $"block {block + 1}/{run.BlockCount}: importance");
                using var next = stream.EmptyLike();
                double cosSum = 0;
                long tokens = 0;
                run.Sweep(block, stream, next, perBatch: (_, x, y) =>
                {
                    using var scope = NewDisposeScope();
                    var cos = nn.functional.cosine_similarity(x.to(float64).flatten(0, -2), y.to(float64).flatten(0, -2), dim: -1);
                    cosSum += cos.sum().item<double>();
                    tokens += cos.shape[0];
                });
                importance[block] = 1.0 - cosSum / tokens;
                stream.ReplaceWith(next);
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
        run.Plan = RankPlan.FromRetentions(run.Shapes, byLinear, run.Options.Ratio);
        for (var block = 0; block < run.BlockCount; block++)
            run.SetBlockReport(new BlockReport { Block = block, Importance = normalised[block], Retention = retentions[block] });
        run.Seconds["profile"] = clock.Elapsed.TotalSeconds;
    }
}
