using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LowRank.Artifacts;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Models;
using LowRank.Torch;
using LowRank.Compression;

namespace LowRank.Jobs;

/// <summary>Perplexity of the model before and after compression on the same tokens (<see cref="CompressionJobOptions.Evaluation"/>).</summary>
public sealed record CompressionEvaluation(TextPerplexityResult Before, TextPerplexityResult After);

public sealed record CompressionJobResult(string Out, CompressionReport Report, CalibrationProtocol? Calibration, ArtifactWriteResult Artifact,
    CompressionEvaluation? Evaluation, string ReportPath);
