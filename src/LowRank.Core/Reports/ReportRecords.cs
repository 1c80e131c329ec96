using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Evaluation.ZeroShot;

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

/// <summary>The model an evaluation ran on.</summary>
public sealed record ModelSummary
{
    public required string Location { get; init; }
    public required string Architecture { get; init; }
    public required int Layers { get; init; }
    public required int HiddenSize { get; init; }
    public required int VocabSize { get; init; }
    public required int MaxPositions { get; init; }
    public required long LinearParameters { get; init; }
    public required string Device { get; init; }
}

/// <summary>Where the perplexity text came from and how it became tokens.</summary>
public sealed record TextSummary
{
    public required string Location { get; init; }
    public required string Format { get; init; }
    public required string Description { get; init; }
    public required string Sha256 { get; init; }
    public required long Bytes { get; init; }
    public required TokenProtocolRecord Protocol { get; init; }
    public required long Tokens { get; init; }

    public static TextSummary From(SourceText source, TokenizedText tokens) => new()
    {
        Location = source.Location,
        Format = source.Format,
        Description = source.Description,
        Sha256 = source.Sha256,
        Bytes = source.Bytes,
        Protocol = tokens.Protocol,
        Tokens = tokens.Count,
    };
}

/// <summary>The machine-readable result of <c>dotnet lowrank eval</c> (its <c>--json</c> output and report.json).</summary>
public sealed record EvalReport
{
    public string Schema { get; init; } = "lowrank.eval/v1";
    public required string Tool { get; init; }
    public required DateTimeOffset CreatedUtc { get; init; }
    public required ModelSummary Model { get; init; }
    public TextSummary? Text { get; init; }
    public PerplexityResult? Perplexity { get; init; }
    public IReadOnlyList<ZeroShotResult> Tasks { get; init; } = [];
}
