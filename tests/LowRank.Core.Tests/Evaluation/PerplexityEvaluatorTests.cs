using LowRank.Evaluation;
using LowRank.Tests.TestSupport;
using LowRank.Torch;

namespace LowRank.Tests.Evaluation;

/// <summary>Perplexity through the real evaluator on a bigram model, checked against the closed form
/// PPL = exp(mean over scored positions of −log P(x_t | x_{t−1})).</summary>
public sealed class PerplexityEvaluatorTests
{
    public PerplexityEvaluatorTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private static int[] RandomStream(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => rng.Next(vocab))];
    }

    private static double ClosedFormMeanNll(BigramModel model, int[] tokens, IEnumerable<PerplexityWindow> windows)
    {
        double sum = 0;
        long count = 0;
        foreach (var w in windows)
        {
            for (var j = w.ScoreFrom; j < w.Length; j++)
            {
                var t = (int)w.Start + j;
                sum += model.Nll(tokens[t - 1], tokens[t]);
                count++;
            }
        }
        return sum / count;
    }

    [Theory]
    [InlineData(1000, 64, 64, 1)]
    [InlineData(1000, 64, 64, 7)]
    [InlineData(1001, 64, 64, 3)]
    [InlineData(1000, 64, 16, 5)]
    [InlineData(999, 50, 7, 4)]
    public void Matches_the_closed_form_for_any_batch_and_stride(int n, int w, int stride, int batch)
    {
        using var model = new BigramModel(BigramModel.RandomTable(11, seed: 5));
        var tokens = RandomStream(n, 11, seed: n);
        var result = PerplexityEvaluator.Evaluate(model, tokens, new PerplexityOptions { WindowLength = w, Stride = stride, BatchSize = batch });
        var plan = PerplexityWindows.Plan(n, w, stride);
        var expected = ClosedFormMeanNll(model, tokens, plan);
        Assert.Equal(PerplexityWindows.ScoredTokens(plan), result.ScoredTokens);
        Assert.Equal(result.ScoredTokens, result.FiniteScoredTokens);
        Assert.Equal(plan.Count, result.Windows);
        Assert.Equal(expected, result.MeanNll, 5);
        Assert.Equal(Math.Exp(expected), result.Perplexity, 4);
        Assert.False(result.Flagged);
        Assert.Equal(plan.Count, result.WindowMeanNll.Count);
    }

    [Fact]
    public void The_first_token_of_each_window_is_context_only()
    {
        // P(next | current) = 1/2 for next == current + 1 (mod V), else spread over the rest. A stream that wraps
        // around would be cheap everywhere; the cost of a token can only be charged when it has a predecessor in the window.
        const int v = 5;
        var table = new double[v, v];
        for (var i = 0; i < v; i++)
            for (var j = 0; j < v; j++) table[i, j] = j == (i + 1) % v ? 0.5 : 0.5 / (v - 1);
        using var model = new BigramModel(table);
        int[] tokens = [0, 1, 2, 3, 4, 0, 1, 2];
        var result = PerplexityEvaluator.Evaluate(model, tokens, new PerplexityOptions { WindowLength = 4 });
        // windows [0,4) and [4,8): 3 + 3 scored, all "next" transitions → NLL = ln 2 each
        Assert.Equal(6, result.ScoredTokens);
        Assert.Equal(Math.Log(2), result.MeanNll, 6);
    }

    [Fact]
    public void Uniform_logits_give_the_vocabulary_size()
    {
        const int v = 13;
        var table = new double[v, v];
        for (var i = 0; i < v; i++)
            for (var j = 0; j < v; j++) table[i, j] = 1.0 / v;
        using var model = new BigramModel(table);
        var result = PerplexityEvaluator.Evaluate(model, RandomStream(500, v, 3), new PerplexityOptions { WindowLength = 100 });
        Assert.Equal(v, result.Perplexity, 3);
    }

    [Fact]
    public void Non_finite_windows_are_listed_flagged_and_excluded_from_the_mean()
    {
        const int v = 7;
        var table = BigramModel.RandomTable(v, seed: 9);
        // transition 3 → 4 becomes impossible: −∞ log-probability, an infinite loss wherever it is scored
        table[3, 4] = 0;
        var rowSum = Enumerable.Range(0, v).Sum(j => table[3, j]);
        for (var j = 0; j < v; j++) table[3, j] /= rowSum;
        using var model = new BigramModel(table);
        var rng = new Random(4);
        var tokens = Enumerable.Range(0, 400).Select(_ => rng.Next(v)).Select(t => t == 4 ? 5 : t).ToArray(); // no 4 anywhere…
        tokens[130] = 3;
        tokens[131] = 4; // …except one 3 → 4 inside window 1 (tokens 100–199)
        var result = PerplexityEvaluator.Evaluate(model, tokens, new PerplexityOptions { WindowLength = 100, BatchSize = 4 });

        Assert.True(result.Flagged);
        var bad = Assert.Single(result.NonFiniteWindows);
        Assert.Equal(1, bad.Index);
        Assert.Equal(100, bad.Start);
        Assert.Equal(99, bad.ScoredTokens);
        Assert.False(double.IsFinite(bad.NllSum));
        Assert.Equal(4 * 99, result.ScoredTokens);
        Assert.Equal(3 * 99, result.FiniteScoredTokens);
        var finiteWindows = PerplexityWindows.Plan(tokens.Length, 100, 100).Where(w => w.Index != 1);
        Assert.Equal(ClosedFormMeanNll(model, tokens, finiteWindows), result.MeanNll, 5);
        Assert.True(double.IsFinite(result.Perplexity));
    }

    [Fact]
    public void Too_few_tokens_is_data_too_short()
    {
        using var model = new BigramModel(BigramModel.RandomTable(4, seed: 1));
        var e = Assert.Throws<LrkException>(() => PerplexityEvaluator.Evaluate(model, [1], new PerplexityOptions { WindowLength = 8 }));
        Assert.Equal(ErrorCodes.DataTooShort, e.Code);
    }

    [Fact]
    public void Default_batch_keeps_logits_near_256_mib()
    {
        Assert.Equal(64, PerplexityEvaluator.DefaultBatch(512, 512));
        Assert.Equal(1, PerplexityEvaluator.DefaultBatch(2048, 128_256));
        Assert.Equal(1, PerplexityEvaluator.DefaultBatch(2048, 32_000));
        Assert.Equal(2, PerplexityEvaluator.DefaultBatch(1024, 32_000));
    }
}
