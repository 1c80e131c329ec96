namespace LowRank.Reports;

/// <summary>One evaluated model on the perplexity-vs-compression plot. <paramref name="Ratio"/> is the compression
/// ratio as the methods define it (fraction of parameters removed, 0 = the dense model; see docs/methods.md).</summary>
public sealed record PerplexityPoint(string Method, double Ratio, double Perplexity);

/// <summary>The rank a compressor kept for one linear of a block, out of min(out, in).</summary>
public sealed record LinearRank(string Kind, long Rank, long FullRank)
{
    public double Fraction => FullRank > 0 ? (double)Rank / FullRank : 0;
}

/// <summary>One decoder block after compression: the fraction of its linear parameters kept, the rank of each linear,
/// and the importance score the method assigned it (null when the method has none).</summary>
public sealed record BlockProfile(int Block, double Retention, IReadOnlyList<LinearRank> Ranks, double? Importance);
