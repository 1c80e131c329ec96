using LowRank.Compression;

namespace LowRank.Tests.Compression;

public sealed class RatioMathTests
{
    [Theory]
    [InlineData(4096, 4096, 0.2, 1638)]
    [InlineData(11008, 4096, 0.2, 2388)]
    [InlineData(4096, 11008, 0.2, 2388)]
    [InlineData(4096, 4096, 0.4, 1228)]
    [InlineData(4096, 4096, 0.6, 819)]
    [InlineData(64, 64, 0.5, 16)]
    [InlineData(172, 64, 0.2, 37)]
    public void Rank_follows_floor_mn_rho_over_m_plus_n(long m, long n, double ratio, long expected)
    {
        Assert.Equal(expected, RatioMath.RankFor(m, n, RatioMath.Retention(ratio)));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(-0.2)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void Ratio_outside_open_unit_interval_is_BadRatio(double ratio)
    {
        var error = Assert.Throws<LrkException>(() => RatioMath.Retention(ratio));
        Assert.Equal(ErrorCodes.BadRatio, error.Code);
        Assert.Contains("REMOVE", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Layers_where_factorising_saves_nothing_stay_dense()
    {
        // Retention 1 gives k = m·n/(m+n) = 32 for 64×64: 32·128 = 4096 = 64·64 saves nothing.
        var full = ModuleRank.At(new LinearShape("x", "q_proj", 0, 64, 64), 1.0);
        Assert.True(full.Dense);
        Assert.Equal(64 * 64, full.Parameters);
        // A 2×2 layer: even rank 1 stores 4 = 2·2 parameters.
        Assert.True(ModuleRank.At(new LinearShape("y", "k", 0, 2, 2), 0.3).Dense);
        // A 1×n "linear" (e.g. a router row) can never save anything.
        Assert.True(ModuleRank.At(new LinearShape("z", "r", 0, 1, 512), 0.5).Dense);
        // One below the break-even rank still saves.
        Assert.Equal(31, RatioMath.MaxSavingRank(64, 64));
        Assert.True(RatioMath.FactorizationSaves(64, 64, 31));
        Assert.False(RatioMath.FactorizationSaves(64, 64, 32));
        Assert.False(ModuleRank.At(new LinearShape("w", "q_proj", 0, 64, 64), 0.99).Dense);
    }

    [Fact]
    public void A_rank_multiple_rounds_every_rank_down_and_keeps_at_least_one_multiple()
    {
        var block = new[]
        {
            new LinearShape("q", "q_proj", 0, 4096, 4096), new LinearShape("gate", "gate_proj", 0, 11008, 4096),
            new LinearShape("tiny", "k_proj", 0, 64, 16),
        };
        var exact = RankPlan.Uniform(block, 0.5);
        var aligned = RankPlan.Uniform(block, 0.5, rankMultiple: 8);
        // CR 0.5: q 1024 (a multiple already), gate 1492 → 1488, tiny floor(64·16·0.5/80) = 6 → 8 (one multiple).
        Assert.Equal([1024L, 1492, 6], exact.Modules.Select(m => m.Rank));
        Assert.Equal([1024L, 1488, 8], aligned.Modules.Select(m => m.Rank));
        Assert.All(aligned.Modules, m => Assert.Equal(0, m.Rank % 8));
        Assert.InRange(aligned.AchievedLinearRatio - exact.AchievedLinearRatio, -0.01, 0.01);
        Assert.Equal(1492, RankPlan.Uniform(block, 0.5, rankMultiple: 1).Modules[1].Rank);
        Assert.Equal(ErrorCodes.BadMethodOption, Assert.Throws<LrkException>(() =>
            new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.5, RankMultiple = 0 }.Validate()).Code);
    }

    [Fact]
    public void Achieved_ratio_on_a_llama7b_block_is_exact()
    {
        var block = new[]
        {
            new LinearShape("q", "q_proj", 0, 4096, 4096), new LinearShape("k", "k_proj", 0, 4096, 4096),
            new LinearShape("v", "v_proj", 0, 4096, 4096), new LinearShape("o", "o_proj", 0, 4096, 4096),
            new LinearShape("gate", "gate_proj", 0, 11008, 4096), new LinearShape("up", "up_proj", 0, 11008, 4096),
            new LinearShape("down", "down_proj", 0, 4096, 11008),
        };
        var plan = RankPlan.Uniform(block, 0.2);
        Assert.Equal([1638, 1638, 1638, 1638, 2388, 2388, 2388], plan.Modules.Select(m => m.Rank));
        Assert.Equal(202_375_168, plan.LinearParametersBefore);
        // 4·1638·8192 + 3·2388·15104 = 53,673,984 + 108,205,056
        Assert.Equal(161_879_040, plan.LinearParametersAfter);
        Assert.Equal(1 - 161_879_040.0 / 202_375_168.0, plan.AchievedLinearRatio, 15);
        Assert.True(plan.AchievedLinearRatio >= 0.2, "floor never keeps more than requested");
        // Whole model: other parameters (embeddings, norms) dilute the ratio.
        var summary = plan.Summarize(otherParameters: 100_000_000);
        Assert.Equal(1 - (161_879_040.0 + 1e8) / (202_375_168.0 + 1e8), summary.AchievedModelRatio, 15);
        Assert.Equal(0, summary.DenseFallbacks);
    }

    [Fact]
    public void Clip_and_redistribute_keeps_the_budget_exactly()
    {
        double[] values = [1.4, 0.7, 0.5, 0.3, 0.9];
        double[] weights = [1, 2, 1, 3, 1];
        double[] lower = [0.05, 0.05, 0.05, 0.4, 0.05];
        double[] upper = [1, 1, 1, 1, 1];
        foreach (var mode in new[] { RatioMath.Redistribution.Shift, RatioMath.Redistribution.Scale })
        {
            var result = RatioMath.ClipAndRedistribute(values, weights, lower, upper, 0.6, mode);
            var mean = result.Select((r, i) => r * weights[i]).Sum() / weights.Sum();
            Assert.Equal(0.6, mean, 12);
            for (var i = 0; i < result.Length; i++) Assert.InRange(result[i], lower[i], upper[i]);
            Assert.Equal(1.0, result[0]);   // clipped at the top
            Assert.Equal(0.4, result[3]);   // clipped at the bottom
        }
    }

    [Fact]
    public void Unreachable_budget_is_BadRatio()
    {
        var error = Assert.Throws<LrkException>(() =>
            RatioMath.ClipAndRedistribute([0.5, 0.5], [1, 1], [0.6, 0.6], [1, 1], 0.5, RatioMath.Redistribution.Shift));
        Assert.Equal(ErrorCodes.BadRatio, error.Code);
    }

    [Theory]
    [InlineData("SVD", CompressionMethod.Svd)]
    [InlineData("fwsvd", CompressionMethod.Fwsvd)]
    [InlineData("Asvd", CompressionMethod.Asvd)]
    [InlineData("SVD-LLM", CompressionMethod.SvdLlm)]
    [InlineData("svdllm", CompressionMethod.SvdLlm)]
    [InlineData("SVD-LLM-V2", CompressionMethod.SvdLlmV2)]
    [InlineData("AdaSVD", CompressionMethod.AdaSvd)]
    [InlineData("lc-svd", CompressionMethod.LcSvd)]
    public void Method_names_parse(string text, CompressionMethod expected)
    {
        Assert.Equal(expected, CompressionMethods.Parse(text));
        Assert.Equal(expected, CompressionMethods.Parse(expected.Name()));
    }

    [Fact]
    public void Unknown_method_lists_the_valid_names()
    {
        var error = Assert.Throws<LrkException>(() => CompressionMethods.Parse("QR"));
        Assert.Equal(ErrorCodes.UnknownMethod, error.Code);
        foreach (var name in CompressionMethods.ValidNames) Assert.Contains(name, error.Message, StringComparison.Ordinal);
    }
}
