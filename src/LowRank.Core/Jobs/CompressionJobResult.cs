using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Data;
using LowRank.Evaluation;

namespace LowRank.Jobs;

/// <summary>Perplexity of the model before and after compression on the same tokens (<see cref="CompressionJobOptions.Evaluation"/>).</summary>
public sealed record CompressionEvaluation(TextPerplexityResult Before, TextPerplexityResult After);

public sealed record CompressionJobResult(string Out, CompressionReport Report, CalibrationProtocol? Calibration, ArtifactWriteResult Artifact,
    CompressionEvaluation? Evaluation, string ReportPath);
