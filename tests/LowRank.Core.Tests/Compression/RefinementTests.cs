using LowRank.Compression;
using LowRank.Torch;
using static LowRank.Tests.TestSupport.MathFixtures;
using static TorchSharp.torch;

namespace LowRank.Tests.Compression;

/// <summary>adaComp, LC-SVD's closed-form refit, and the allocation rules (adaCR, SVD-LLM V2, LC-SVD's search).</summary>
public sealed class RefinementTests
{
    public RefinementTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    /// <summary>Original-model inputs X_o and compressed-model inputs X = X_o + upstream error.</summary>
    private static (Tensor Original, Tensor Compressed) Streams(long n, long tokens, ulong seed)
    {
        var original = Inputs(n, tokens, seed);
        var drift = 0.3 * matmul(Randn(n, n, seed + 5) / Math.Sqrt(n), original) + 0.05 * Randn(n, tokens, seed + 6);
        return (original, original + drift);
    }

    private static double Objective(Tensor w, Tensor target, Tensor x, LowRankFactors f) => Norm(matmul(w, target) - matmul(f.Product(), x));

    [Fact]
    public void AdaComp_never_increases_the_objective_and_its_gram_form_matches_the_data()
    {
        using var scope = NewDisposeScope();
        var w = Weight(40, 56, 81);
        var (xo, x) = Streams(56, 3000, 82);
        var h = matmul(x, x.T);
        var c = matmul(xo, x.T);
        using var factors = SvdLlm.Factorize(w, h, 14, SvdAlgorithm.Direct, 1e-10, out _);
        var before = Objective(w, xo, x, factors);
        var trace = AdaSvd.Refine(w, h, c, factors, iterations: 4, AdaSvd.DefaultPinvRtol);
        for (var i = 1; i < trace.Length; i++)
            Assert.True(trace[i] <= trace[i - 1] + 1e-9 * Math.Abs(trace[0]), $"half-step {i} increased the objective: {trace[i - 1]} → {trace[i]}");
        var after = Objective(w, xo, x, factors);
        Assert.True(after < before, $"adaComp did not improve: {before} → {after}");
        // Gram form = data form up to the constant ‖W X_o‖².
        var constant = Math.Pow(Norm(matmul(w, xo)), 2);
        Assert.Equal(after * after, trace[^1] + constant, 6);
    }

    [Fact]
    public void AdaComp_against_the_whitening_inputs_cannot_improve_on_svd_llm()
    {
        using var scope = NewDisposeScope();
        var w = Weight(40, 56, 91);
        var x = Inputs(56, 3000, 92);
        var h = matmul(x, x.T);
        using var factors = SvdLlm.Factorize(w, h, 14, SvdAlgorithm.Direct, 1e-12, out _);
        var before = DataError(w, factors.A, factors.B, x);
        AdaSvd.Refine(w, h, cross: null, factors, iterations: 2, AdaSvd.DefaultPinvRtol);
        Assert.Equal(before, DataError(w, factors.A, factors.B, x), 6);
    }

    [Fact]
    public void AdaComp_from_the_original_input_whitening_moves_to_svd_llm_on_the_compressed_inputs()
    {
        // The default: start from the truncation whitened with the original model's inputs, re-fit it to the inputs
        // the layer really sees (target W·x). The fixed point is SVD-LLM whitened with those inputs, the optimum.
        using var scope = NewDisposeScope();
        var w = Weight(40, 56, 111);
        var (xo, x) = Streams(56, 3000, 112);
        var h = matmul(x, x.T);
        var optimum = SvdLlm.Factorize(w, h, 14, SvdAlgorithm.Direct, 1e-12, out _);
        var best = DataError(w, optimum.A, optimum.B, x);
        double ErrorAfter(int iterations)
        {
            using var start = SvdLlm.Factorize(w, matmul(xo, xo.T), 14, SvdAlgorithm.Direct, 1e-12, out _);
            var trace = AdaSvd.Refine(w, h, cross: null, start, iterations, AdaSvd.DefaultPinvRtol);
            for (var i = 1; i < trace.Length; i++) Assert.True(trace[i] <= trace[i - 1] + 1e-9 * Math.Abs(trace[0]));
            // The balanced factors carry the same product, with equal norms in each rank-one term.
            var columns = linalg.vector_norm(start.A, dims: [0]);
            var rows = linalg.vector_norm(start.B, dims: [1]);
            if (iterations > 0) Assert.True(Norm(columns - rows) < 1e-9 * Norm(columns));
            return DataError(w, start.A, start.B, x);
        }
        var none = ErrorAfter(0);
        var one = ErrorAfter(1);
        var many = ErrorAfter(30);
        Assert.True(best < none, $"the original-input truncation {none} should be worse on the compressed inputs than their own optimum {best}");
        Assert.True(one < none && many <= one * (1 + 1e-12), $"adaComp errors: 0 rounds {none}, 1 round {one}, 30 rounds {many}");
        Assert.True((many - best) / best < 1e-3, $"30 rounds {many} vs optimum {best}");
        optimum.Dispose();
    }

    [Fact]
    public void LcSvd_refit_is_the_closed_form_optimum_adaComp_moves_towards()
    {
        using var scope = NewDisposeScope();
        var w = Weight(40, 56, 101);
        var (xo, x) = Streams(56, 3000, 102);
        var h = matmul(x, x.T);
        var c = matmul(xo, x.T);
        using var svdLlm = SvdLlm.Factorize(w, h, 14, SvdAlgorithm.Direct, 1e-12, out _);
        using var ada = SvdLlm.Factorize(w, h, 14, SvdAlgorithm.Direct, 1e-12, out _);
        AdaSvd.Refine(w, h, c, ada, iterations: 3, AdaSvd.DefaultPinvRtol);
        using var lc = LcSvd.Factorize(w, h, c, 14, ridge: 0, SvdAlgorithm.Direct, 1e-12, out _);
        var lcError = Objective(w, xo, x, lc);
        var adaError = Objective(w, xo, x, ada);
        var svdLlmError = Objective(w, xo, x, svdLlm);
        Assert.True(lcError <= adaError * (1 + 1e-9), $"LC {lcError} > AdaSVD {adaError}");
        Assert.True(adaError < svdLlmError);
        // Without upstream error (X_o = X) and without ridge it IS SVD-LLM.
        using var same = LcSvd.Factorize(w, h, null, 14, ridge: 0, SvdAlgorithm.Direct, 1e-12, out _);
        Assert.True(Norm(same.Product() - svdLlm.Product()) / Norm(w) < 1e-8);
    }

    [Fact]
    public void LcSvd_ridge_pulls_the_refit_towards_the_original_weight()
    {
        using var scope = NewDisposeScope();
        var w = Weight(20, 24, 111);
        var (xo, x) = Streams(24, 2000, 112);
        var h = matmul(x, x.T);
        var c = matmul(xo, x.T);
        using var loose = LcSvd.Factorize(w, h, c, 20, ridge: 0, SvdAlgorithm.Direct, 1e-12, out _);
        using var tight = LcSvd.Factorize(w, h, c, 20, ridge: 1e4, SvdAlgorithm.Direct, 1e-12, out _);
        Assert.True(Norm(tight.Product() - w) < 0.01 * Norm(loose.Product() - w));
    }

    [Fact]
    public void AdaCR_keeps_the_budget_exactly_and_ranks_blocks_by_importance()
    {
        double[] importance = [0.9, 0.2, 0.1, 0.15, 0.4];
        double[] parameters = [1e6, 1e6, 1e6, 1e6, 1e6];
        double[] lower = [0.01, 0.01, 0.01, 0.01, 0.01];
        foreach (var (trr, mrr) in new[] { (0.4, 0.35), (0.8, 0.5), (0.6, 0.55) })
        {
            var retention = AdaSvd.BlockRetentions(importance, trr, mrr, parameters, lower);
            Assert.Equal(trr, retention.Average(), 12);
            Assert.All(retention, r => Assert.InRange(r, 0.01, 1.0));
            Assert.Equal(0, Array.IndexOf(retention, retention.Max()));
            Assert.Equal(2, Array.IndexOf(retention, retention.Min()));
        }
        // (0.8, 0.5): block 0 would get 0.5 + (0.9/0.35)·0.3 = 1.27 > 1, so clipping and redistribution were exercised.
        Assert.Equal(1.0, AdaSvd.BlockRetentions(importance, 0.8, 0.5, parameters, lower)[0]);
    }

    [Fact]
    public void AdaCR_importance_is_one_minus_cosine()
    {
        using var scope = NewDisposeScope();
        var input = Randn(10, 8, 121).reshape(2, 5, 8);
        Assert.Equal(0.0, AdaSvd.Importance(input, input * 3), 12);
        Assert.Equal(2.0, AdaSvd.Importance(input, -input), 12);
    }

    [Fact]
    public void SvdLlmV2_allocation_keeps_each_group_mean_at_the_target()
    {
        var losses = new List<SvdLlmV2.MatrixLoss>();
        var random = new Random(5);
        for (var block = 0; block < 6; block++)
        {
            losses.Add(new(new LinearShape($"b{block}.q", "q_proj", block, 64, 64), 0.5 + random.NextDouble()));
            losses.Add(new(new LinearShape($"b{block}.up", "up_proj", block, 172, 64), block == 0 ? 20 : 0.1 + random.NextDouble()));
        }
        var allocation = SvdLlmV2.Allocate(losses, 0.6);
        foreach (var group in losses.GroupBy(l => l.Linear.Kind))
        {
            Assert.Equal(0.6, group.Average(l => allocation[l.Linear.Name]), 12);
            Assert.All(group, l => Assert.InRange(allocation[l.Linear.Name], RatioMath.MinRetention(l.Linear.OutFeatures, l.Linear.InFeatures), 1.0));
        }
        // Unclipped q group: proportional to loss.
        var q = losses.Where(l => l.Linear.Kind == "q_proj").ToArray();
        Assert.Equal(q[0].Loss / q[1].Loss, allocation[q[0].Linear.Name] / allocation[q[1].Linear.Name], 9);
        Assert.Equal(1.0, allocation["b0.up"]);   // the huge loss was clipped at dense
    }

    [Fact]
    public void LcSvd_block_allocation_is_the_exact_knapsack_optimum()
    {
        var random = new Random(9);
        const int blocks = 5;
        var offsets = new[] { -2, -1, 0, 1, 2 };
        var error = new List<double[]>();
        var cost = new List<long[]>();
        for (var l = 0; l < blocks; l++)
        {
            var scale = 0.5 + 3 * random.NextDouble();
            error.Add(offsets.Select(o => scale * Math.Exp(-0.7 * o) + random.NextDouble() * 0.01).ToArray());
            cost.Add(offsets.Select(o => 10_000L + 1_000L * o + random.Next(0, 50)).ToArray());
        }
        var reference = Enumerable.Repeat(2, blocks).ToArray();
        var choice = LcSvd.AllocateBlocks(error, cost, reference, unit: 1);
        var budget = Enumerable.Range(0, blocks).Sum(l => cost[l][2]);
        // Brute force over all 5^5 configurations.
        var bestError = double.PositiveInfinity;
        foreach (var config in Enumerable.Range(0, (int)Math.Pow(5, blocks)))
        {
            var options = Enumerable.Range(0, blocks).Select(l => config / (int)Math.Pow(5, l) % 5).ToArray();
            if (Enumerable.Range(0, blocks).Sum(l => cost[l][options[l]]) > budget) continue;
            bestError = Math.Min(bestError, Enumerable.Range(0, blocks).Sum(l => error[l][options[l]]));
        }
        Assert.Equal(bestError, Enumerable.Range(0, blocks).Sum(l => error[l][choice[l]]), 12);
        Assert.True(Enumerable.Range(0, blocks).Sum(l => cost[l][choice[l]]) <= budget);
        Assert.True(Enumerable.Range(0, blocks).Sum(l => error[l][choice[l]]) <= Enumerable.Range(0, blocks).Sum(l => error[l][2]));
    }
}
