using LowRank.Data;

namespace LowRank.Evaluation;

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
