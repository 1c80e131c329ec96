namespace LowRank.Evaluation;

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
