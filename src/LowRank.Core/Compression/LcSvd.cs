using LowRank.Models;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// LC-SVD: block-collaborative low-rank decomposition. There is no public code; this is our design from the method's
/// description ("decompose all linear layers of a transformer block jointly, minimising the error of the whole
/// block's output, and search per-block rank configurations by the block output error under the global budget").
/// <para><b>1. Collaborative refit inside a block.</b> The linears of a block are compressed in execution order, in
/// stages of linears that share an input (LLaMA: [q,k,v] → [o] → [gate,up] → [down]). For stage s, the block runs
/// twice per calibration batch: the ORIGINAL block on the original model's hidden states (giving the target inputs
/// X_o of each linear: what the uncompressed model computes there), and the CURRENT block — its earlier stages
/// already compressed — on the compressed model's hidden states (giving the inputs X the compressed linear will
/// really see). Each linear of the stage then solves the reduced-rank regression
/// <c>min_{rank W' ≤ k} ‖W X_o − W' X‖² + λ‖W' − W‖²</c> in closed form: with <c>H = X Xᵀ + λI = L Lᵀ</c> and
/// <c>C = X_o Xᵀ + λI</c>, the unconstrained optimum is <c>M = W C H⁻¹</c> and the rank-k optimum is the truncated SVD
/// of <c>M L = W C L⁻ᵀ</c> mapped back through L⁻¹: <c>A = U_k Σ_k^½</c>, <c>B = Σ_k^½ V_kᵀ L⁻¹</c>. So every linear
/// absorbs the error of everything upstream of it — earlier blocks AND the earlier linears of its own block — instead
/// of reproducing its own input-output map in isolation (which is what lets errors accumulate inside a block). The
/// ridge term (λ = <see cref="CompressionOptions.LcSvdRidge"/>·tr(XXᵀ)/n) keeps the refit near W in directions the
/// calibration data barely excite; with X = X_o it reduces exactly to SVD-LLM's whitened truncation of
/// <c>W (XXᵀ + λI)^½</c>. This is the optimum AdaSVD's alternating updates move towards, computed directly.</para>
/// <para><b>2. Guard.</b> After the refit the block output error <c>‖f(x_o) − f'(x)‖² / ‖f(x_o)‖²</c> on the calibration
/// batches is compared with that of the plain SVD-LLM factorisation of the same block at the same ranks (whitened by
/// the same block's uncompressed-block inputs); the lower one is kept, so on the calibration data LC-SVD's block error
/// is never above SVD-LLM's.</para>
/// <para><b>3. Error-driven rank search across blocks.</b> Before compressing, one profiling pass over the original model
/// measures, for every block l and every candidate retention ρ in trr + {−0.2, −0.15, …, +0.2} (see
/// <see cref="CompressionOptions.LcSvdSearchOffsets"/>), the relative block output error e_l(ρ) of the whitened
/// truncation at that retention. The per-block retentions then minimise <c>Σ_l e_l(ρ_l)</c> subject to the parameter
/// budget of the uniform allocation (<see cref="AllocateBlocks"/>: a multiple-choice knapsack solved exactly by
/// dynamic programming over budget steps). Blocks whose output error grows fastest with truncation get the capacity.</para>
/// </summary>
public static class LcSvd
{
    public const double DefaultRidge = 1e-3;

    /// <summary>The closed-form reduced-rank ridge regression of part 1 (all fp64).
    /// <paramref name="gram"/> = X Xᵀ (compressed-model inputs); <paramref name="cross"/> = X_o Xᵀ (null: X_o = X).</summary>
    public static LowRankFactors Factorize(Tensor weight, Tensor gram, Tensor? cross, long rank, double ridge, SvdAlgorithm algorithm,
        double epsilon, out WhiteningKind kind)
    {
        using var scope = NewDisposeScope();
        var w = weight.to(float64);
        var h = gram.to(float64);
        h = (h + h.T) * 0.5;
        var n = h.shape[0];
        var lambda = ridge * h.diagonal().mean().item<double>();
        var identity = eye(n, dtype: float64, device: h.device);
        var hRidge = h + lambda * identity;
        var cRidge = (cross?.to(float64) ?? h) + lambda * identity;
        using var whitening = Whitening.Cholesky(hRidge, epsilon);
        kind = whitening.Kind;
        // M L = W C H⁻¹ L = W C L⁻ᵀ  (H = L Lᵀ; the same identity holds for an eigen factor).
        var target = whitening.ApplyInverseTranspose(matmul(w, cRidge));
        using var svd = SvdKernel.Truncate(target, rank, algorithm);
        var (a, b) = svd.BalancedFactors();
        return new LowRankFactors(a, whitening.Unwhiten(b), svd.S.clone());
    }

    /// <summary>
    /// Part 3: chooses one candidate per block minimising <c>Σ_l error[l][c_l]</c> subject to spending no more
    /// parameters than the <paramref name="reference"/> choice (the uniform allocation). Costs are parameter counts;
    /// the DP runs over the budget in units of <paramref name="unit"/> parameters, each cost rounded up to whole units,
    /// so the reference is always feasible and the result can exceed its exact cost by less than one unit per block.
    /// Returns the chosen candidate index per block.
    /// </summary>
    public static int[] AllocateBlocks(IReadOnlyList<double[]> error, IReadOnlyList<long[]> cost, IReadOnlyList<int> reference, long unit)
    {
        var blocks = error.Count;
        if (blocks == 0) return [];
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(unit);
        var capacity = 0;
        for (var l = 0; l < blocks; l++) capacity += Units(cost[l][reference[l]], unit);
        var best = new double[capacity + 1];
        var choice = new int[blocks, capacity + 1];
        Array.Fill(best, 0);
        var current = new double[capacity + 1];
        for (var l = 0; l < blocks; l++)
        {
            Array.Fill(current, double.PositiveInfinity);
            for (var c = 0; c <= capacity; c++)
            {
                for (var option = 0; option < error[l].Length; option++)
                {
                    var units = Units(cost[l][option], unit);
                    if (units > c) continue;
                    var previous = best[c - units];
                    if (double.IsPositiveInfinity(previous)) continue;
                    var value = previous + error[l][option];
                    if (value < current[c])
                    {
                        current[c] = value;
                        choice[l, c] = option;
                    }
                }
            }
            (best, current) = (current, best);
        }
        if (double.IsPositiveInfinity(best[capacity]))
            throw new LrkException(ErrorCodes.BadRatio, "LC-SVD rank search: no candidate configuration fits the parameter budget");
        var result = new int[blocks];
        var remaining = capacity;
        for (var l = blocks - 1; l >= 0; l--)
        {
            result[l] = choice[l, remaining];
            remaining -= Units(cost[l][result[l]], unit);
        }
        return result;
    }

    private static int Units(long parameters, long unit) => (int)((parameters + unit - 1) / unit);

    /// <summary>Pipeline: rank search (part 3) when enabled, then the two-stream block-collaborative pass (parts 1–2).</summary>
    internal static void Run(CompressionRun run)
    {
        if (run.Options.LcSvdRankSearch) run.Follow(SearchRanks(run));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var options = run.Options;
        var twoStreams = options.EffectivePropagation == Propagation.Compressed;
        using var original = run.EmbedCalibration();
        using var compressed = twoStreams ? original.Clone() : null;
        var current = compressed ?? original;
        for (var block = 0; block < run.BlockCount; block++)
        {
            var linears = run.Model.BlockLinears(block);
            var compressible = run.Compressible(block).Select(l => l.Name).ToHashSet(StringComparer.Ordinal);
            var stages = DetectStages(run, block, current);
            using var weights = new BlockWeights(linears);
            using var plain = options.LcSvdGuard ? new LinearStatistics(compressible.Contains, precision: run.Options.GramPrecision) : null;
            using var nextOriginal = original.EmptyLike();
            var refit = new Dictionary<string, LowRankFactors>(StringComparer.Ordinal);
            var kinds = new Dictionary<string, WhiteningKind>(StringComparer.Ordinal);
            try
            {
                for (var stage = 0; stage < stages.Count; stage++)
                {
                    var members = stages[stage].Where(compressible.Contains).ToArray();
                    if (members.Length == 0 && stage > 0) continue;
                    run.Report("compress", block, $"block {block + 1}/{run.BlockCount}: stage {stage + 1}/{stages.Count} ({string.Join(", ", stages[stage].Select(Short))})");
                    using var stats = new LinearStatistics(members.Contains, precision: run.Options.GramPrecision);
                    foreach (var indices in run.Batches())
                    {
                        run.Token.ThrowIfCancellationRequested();
                        using var scope = NewDisposeScope();
                        weights.UseOriginal();
                        var originalOut = run.Model.RunBlock(block, original.Batch(indices, run.Device), stats.Recorder());
                        if (stage == 0) nextOriginal.Write(indices, originalOut);
                        weights.UseCompressed();
                        var observer = stats.Observer();
                        if (stage == 0 && plain is not null)
                        {
                            var plainObserver = plain.Observer();
                            var stageObserver = observer;
                            observer = (linear, input) =>
                            {
                                stageObserver(linear, input);
                                plainObserver(linear, input);
                            };
                        }
                        run.Model.RunBlock(block, current.Batch(indices, run.Device), observer);
                    }
                    foreach (var name in members)
                    {
                        using var scope = NewDisposeScope();
                        var factors = Factorize(weights.Original(name).to(run.Device), stats.Gram(name), stats.Cross(name),
                            run.Plan[name].Rank, options.LcSvdRidge, run.Algorithm, options.WhiteningEpsilon, out var kind);
                        refit[name] = factors;
                        kinds[name] = kind;
                        CheckFinite(name, factors);
                        weights.SetFactors(name, factors.A, factors.B);
                    }
                }

                run.Report("compress", block, $"block {block + 1}/{run.BlockCount}: block output error");
                weights.UseCompressed();
                using var nextCompressed = original.EmptyLike();
                var refitError = BlockError(run, block, current, nextOriginal, nextCompressed);
                double? svdLlmError = null;
                var chosen = "LC-SVD";
                if (plain is not null && refit.Count > 0)
                {
                    var svdLlm = new Dictionary<string, LowRankFactors>(StringComparer.Ordinal);
                    try
                    {
                        foreach (var name in refit.Keys)
                        {
                            using var scope = NewDisposeScope();
                            svdLlm[name] = SvdLlm.Factorize(weights.Original(name).to(run.Device), plain.Gram(name), run.Plan[name].Rank,
                                run.Algorithm, options.WhiteningEpsilon, out _);
                            weights.SetFactors(name, svdLlm[name].A, svdLlm[name].B);
                        }
                        svdLlmError = BlockError(run, block, current, nextOriginal, null);
                        if (svdLlmError < refitError)
                        {
                            chosen = "SVD-LLM";
                            BlockError(run, block, current, nextOriginal, nextCompressed);
                            foreach (var (name, factors) in svdLlm) run.Record(name, factors, "Cholesky (guard: SVD-LLM)");
                        }
                        else
                        {
                            foreach (var (name, factors) in refit) weights.SetFactors(name, factors.A, factors.B);
                        }
                    }
                    finally
                    {
                        foreach (var factors in svdLlm.Values) factors.Dispose();
                    }
                }
                if (chosen == "LC-SVD")
                {
                    foreach (var (name, factors) in refit) run.Record(name, factors, kinds[name].ToString());
                }
                weights.UseCompressed();
                var previous = run.BlockReportOf(block);
                run.SetBlockReport((previous ?? new BlockReport { Block = block }) with
                {
                    OutputError = Math.Min(refitError, svdLlmError ?? double.PositiveInfinity),
                    SvdLlmOutputError = svdLlmError,
                    Chosen = chosen,
                });
                if (compressed is not null) compressed.ReplaceWith(nextCompressed);
                original.ReplaceWith(nextOriginal);
            }
            finally
            {
                foreach (var factors in refit.Values) factors.Dispose();
            }
        }
        run.Seconds["compress"] = clock.Elapsed.TotalSeconds;
    }

    /// <summary>Σ‖f(x_o) − f'(x)‖² / Σ‖f(x_o)‖² over the calibration set, for the block as it is now; writes f'(x) when asked.</summary>
    private static double BlockError(CompressionRun run, int block, HiddenStates input, HiddenStates originalOutput, HiddenStates? output)
    {
        double error = 0, reference = 0;
        run.Sweep(block, input, output, perBatch: (indices, _, y) =>
        {
            using var scope = NewDisposeScope();
            var target = originalOutput.Batch(indices, run.Device).to(float64);
            error += (y.to(float64) - target).square().sum().item<double>();
            reference += target.square().sum().item<double>();
        });
        return reference > 0 ? error / reference : 0;
    }

    /// <summary>Groups the block's linears into stages of linears that read the same input, in execution order, by running
    /// the block once on one calibration sample.</summary>
    private static List<List<string>> DetectStages(CompressionRun run, int block, HiddenStates input)
    {
        var stages = new List<List<string>>();
        object? last = null;
        using var scope = NewDisposeScope();
        run.Model.RunBlock(block, input.Batch([0], run.Device), (linear, x) =>
        {
            if (!ReferenceEquals(x, last))
            {
                stages.Add([]);
                last = x;
            }
            stages[^1].Add(linear.Name);
        });
        var seen = stages.SelectMany(s => s).ToHashSet(StringComparer.Ordinal);
        var missing = run.Model.BlockLinears(block).Where(l => !seen.Contains(l.Name)).Select(l => l.Name).ToArray();
        if (missing.Length > 0)
            throw new LrkException(ErrorCodes.Internal, $"block {block}: the forward pass did not report the inputs of {string.Join(", ", missing)}");
        return stages;
    }

    private static void CheckFinite(string name, LowRankFactors factors)
    {
        if (!factors.A.isfinite().all().item<bool>() || !factors.B.isfinite().all().item<bool>())
            throw new LrkException(ErrorCodes.DecompositionFailed, $"{name}: the factorisation produced non-finite values");
    }

    private static string Short(string name) => name[(name.LastIndexOf('.') + 1)..];

    /// <summary>Part 3: profile every block at every candidate retention on the original model, then allocate; returns the rank plan.</summary>
    private static RankPlan SearchRanks(CompressionRun run)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var target = 1.0 - run.Options.Ratio;
        var offsets = run.Options.LcSvdSearchOffsets.Distinct().Order().ToArray();
        var reference = Array.IndexOf(offsets, 0.0);
        var errors = new List<double[]>();
        var costs = new List<long[]>();
        var retentions = new List<double[]>();
        using (var stream = run.EmbedCalibration())
        {
            for (var block = 0; block < run.BlockCount; block++)
            {
                run.Report("profile", block, $"block {block + 1}/{run.BlockCount}: {offsets.Length} candidate ranks");
                var shapes = run.Shapes.Where(s => s.Block == block).ToArray();
                var lower = shapes.Max(s => RatioMath.MinRetention(s.OutFeatures, s.InFeatures));
                var candidates = offsets.Select(o => Math.Clamp(target + o, lower, 1.0)).ToArray();
                using var stats = new LinearStatistics(_ => true, precision: run.Options.GramPrecision);
                using var next = stream.EmptyLike();
                run.Sweep(block, stream, next, stats.Observer);
                using var weights = new BlockWeights(run.Model.BlockLinears(block));
                var decompositions = new Dictionary<string, (Whitening Whitening, TruncatedSvd Svd)>(StringComparer.Ordinal);
                try
                {
                    foreach (var shape in shapes)
                    {
                        var largest = candidates.Select(c => ModuleRank.At(shape, c, run.Options.RankMultiple)).Where(r => !r.Dense).Select(r => r.Rank).DefaultIfEmpty(0).Max();
                        if (largest == 0) continue;
                        using var scope = NewDisposeScope();
                        var whitening = Whitening.Cholesky(stats.Gram(shape.Name), run.Options.WhiteningEpsilon);
                        decompositions[shape.Name] = (whitening, SvdKernel.Truncate(whitening.Whiten(weights.Original(shape.Name).to(run.Device)), largest, run.Algorithm));
                    }
                    var blockErrors = new double[candidates.Length];
                    var blockCosts = new long[candidates.Length];
                    for (var c = 0; c < candidates.Length; c++)
                    {
                        foreach (var shape in shapes)
                        {
                            var rank = ModuleRank.At(shape, candidates[c], run.Options.RankMultiple);
                            blockCosts[c] += rank.Parameters;
                            if (rank.Dense) continue;
                            using var scope = NewDisposeScope();
                            var (whitening, svd) = decompositions[shape.Name];
                            var k = (int)rank.Rank;
                            var root = svd.S[..k].sqrt();
                            weights.SetFactors(shape.Name, svd.U[.., ..k] * root.unsqueeze(0), whitening.Unwhiten(root.unsqueeze(1) * svd.Vh[..k]));
                        }
                        blockErrors[c] = BlockError(run, block, stream, next, null);
                        weights.ClearFactors();
                    }
                    errors.Add(blockErrors);
                    costs.Add(blockCosts);
                    retentions.Add(candidates);
                }
                finally
                {
                    foreach (var (whitening, svd) in decompositions.Values)
                    {
                        whitening.Dispose();
                        svd.Dispose();
                    }
                }
                stream.ReplaceWith(next);
            }
        }
        var budget = costs.Sum(c => c[reference]);
        var choice = AllocateBlocks(errors, costs, Enumerable.Repeat(reference, run.BlockCount).ToArray(), Math.Max(1, budget / 20_000));
        var byLinear = run.Shapes.ToDictionary(s => s.Name, s => retentions[s.Block][choice[s.Block]], StringComparer.Ordinal);
        for (var block = 0; block < run.BlockCount; block++)
        {
            run.SetBlockReport(new BlockReport
            {
                Block = block,
                Retention = retentions[block][choice[block]],
                CandidateRetentions = retentions[block],
                CandidateErrors = errors[block],
            });
        }
        run.Seconds["profile"] = clock.Elapsed.TotalSeconds;
        return RankPlan.FromRetentions(run.Shapes, byLinear, run.Options.Ratio, run.Options.RankMultiple);
    }
}
