namespace LowRank.Evaluation;

/// <summary>One window of the token stream: tokens [Start, Start + Length) go through the model; positions
/// ScoreFrom … Length−1 of the window are scored (each predicted from the tokens before it in the window).</summary>
public readonly record struct PerplexityWindow(int Index, long Start, int Length, int ScoreFrom)
{
    public int Scored => Length - ScoreFrom;
}

/// <summary>
/// Where the perplexity windows lie in a stream of n tokens, for window length W and stride S (1 ≤ S ≤ W):
/// window k starts at k·S and ends at min(k·S + W, n); it scores its positions from max(start + 1, end of the previous
/// window) on — the first token of a window is always context only, and no token is scored twice. Windows stop with the
/// one that reaches n. A window that would score nothing (a last window of a single token) is left out.
/// <para>S = W (the default, the papers' protocol): non-overlapping windows from index 0, each scoring W − 1 tokens,
/// and a final partial window of r = n mod W tokens scoring r − 1 when r ≥ 2. Scored tokens = n − ⌈n / W⌉
/// (e.g. stories260K: n = 71,304 → 71,164). S &lt; W: the Hugging Face sliding-window evaluation — every token after
/// the first is scored once, with up to W − S tokens of extra context.</para>
/// </summary>
public static class PerplexityWindows
{
    public static IReadOnlyList<PerplexityWindow> Plan(long tokenCount, int windowLength, int stride)
    {
        if (windowLength < 2) throw new LrkException(ErrorCodes.BadArgument, $"the perplexity window must hold at least 2 tokens (got {windowLength})");
        if (stride < 1 || stride > windowLength)
            throw new LrkException(ErrorCodes.BadArgument, $"the stride must be between 1 and the window length {windowLength} (got {stride})");
        var windows = new List<PerplexityWindow>();
        long previousEnd = 0;
        for (long start = 0; start < tokenCount; start += stride)
        {
            var end = Math.Min(start + windowLength, tokenCount);
            var scoreFrom = (int)Math.Max(1, previousEnd - start);
            var length = (int)(end - start);
            if (length > scoreFrom) windows.Add(new PerplexityWindow(windows.Count, start, length, scoreFrom));
            previousEnd = end;
            if (end == tokenCount) break;
        }
        return windows;
    }

    public static long ScoredTokens(IEnumerable<PerplexityWindow> windows) => windows.Sum(w => (long)w.Scored);
}
