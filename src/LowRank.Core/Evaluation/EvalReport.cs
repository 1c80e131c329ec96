using LowRank.Evaluation.ZeroShot;

namespace LowRank.Evaluation;

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
