using LowRank.Evaluation;

namespace LowRank.Tests.Evaluation;

public sealed class PerplexityWindowsTests
{
    [Theory]
    // the stories260K reference: n − ⌈n/512⌉ scored tokens, the partial last window included
    [InlineData(71_304, 512, 140, 71_164)]
    [InlineData(388_717, 512, 760, 387_957)]
    // exact multiples: every window full
    [InlineData(1536, 512, 3, 1533)]
    // one token past a multiple: a last window of one token scores nothing and is left out
    [InlineData(1537, 512, 3, 1533)]
    // two past: a last window of two tokens scores one
    [InlineData(1538, 512, 4, 1534)]
    [InlineData(1, 512, 0, 0)]
    [InlineData(2, 512, 1, 1)]
    public void Non_overlapping_windows_score_n_minus_ceil_n_over_w(int n, int w, int windows, int scored)
    {
        var plan = PerplexityWindows.Plan(n, w, w);
        Assert.Equal(windows, plan.Count);
        Assert.Equal(scored, PerplexityWindows.ScoredTokens(plan));
        Assert.All(plan, window => Assert.Equal(1, window.ScoreFrom));
        for (var i = 0; i < plan.Count; i++)
        {
            Assert.Equal(i, plan[i].Index);
            Assert.Equal((long)i * w, plan[i].Start);
        }
    }

    [Theory]
    [InlineData(10, 4, 2)]
    [InlineData(1000, 128, 32)]
    [InlineData(1000, 128, 127)]
    [InlineData(1001, 64, 1)]
    [InlineData(777, 100, 100)]
    public void Every_token_after_the_first_is_scored_at_most_once_and_with_context(int n, int w, int stride)
    {
        var plan = PerplexityWindows.Plan(n, w, stride);
        var scoredCount = new int[n];
        foreach (var window in plan)
        {
            Assert.InRange(window.Length, 2, w);
            Assert.True(window.ScoreFrom >= 1);
            for (var j = window.ScoreFrom; j < window.Length; j++) scoredCount[window.Start + j]++;
        }
        Assert.Equal(0, scoredCount[0]);
        Assert.All(scoredCount, c => Assert.InRange(c, 0, 1));
        if (stride < w)
        {
            // sliding windows score every token after the first exactly once
            Assert.All(scoredCount.Skip(1), c => Assert.Equal(1, c));
            Assert.Equal(n - 1, PerplexityWindows.ScoredTokens(plan));
        }
    }

    [Fact]
    public void Sliding_window_plan_matches_the_hugging_face_loop_by_hand()
    {
        // n = 10, W = 4, S = 2: [0,4) scores 1..3; [2,6) scores 4,5; [4,8) scores 6,7; [6,10) scores 8,9
        var plan = PerplexityWindows.Plan(10, 4, 2);
        Assert.Equal(
            [new PerplexityWindow(0, 0, 4, 1), new PerplexityWindow(1, 2, 4, 2), new PerplexityWindow(2, 4, 4, 2), new PerplexityWindow(3, 6, 4, 2)],
            plan);
    }

    [Theory]
    [InlineData(512, 0)]
    [InlineData(512, 513)]
    [InlineData(1, 1)]
    public void Bad_window_or_stride_is_a_bad_argument(int w, int stride)
    {
        var e = Assert.Throws<LrkException>(() => PerplexityWindows.Plan(1000, w, stride));
        Assert.Equal(ErrorCodes.BadArgument, e.Code);
    }
}
