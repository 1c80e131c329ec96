using System.Text.Json.Nodes;
using LowRank.Compression;

namespace LowRank.Bench;

public sealed record ScaleBenchmarkResult
{
    public required string Shape { get; init; }
    public required JsonObject Config { get; init; }
    public required int BlocksRun { get; init; }
    public required int BlocksOfShape { get; init; }
    public required string Method { get; init; }
    public required double Ratio { get; init; }
    public required int Samples { get; init; }
    public required int SeqLen { get; init; }
    public required int BatchSize { get; init; }
    public required string Calibration { get; init; }
    public required string Weights { get; init; }
    public required string Device { get; init; }
    public required string Machine { get; init; }
    public required string DateUtc { get; init; }
    public required double SynthesisSeconds { get; init; }
    public required double CheckpointGiB { get; init; }
    /// <summary>load, statistics (activation profiling), decomposition, propagation, profile (adaCR), write, total.</summary>
    public required IReadOnlyDictionary<string, double> Seconds { get; init; }
    public double? SecondsExtrapolatedToAllBlocks { get; init; }
    public required double? PeakGpuGiB { get; init; }
    public required double? GpuBaselineGiB { get; init; }
    public required string PeakGpuMethod { get; init; }
    public required RatioSummary Ratios { get; init; }
    public required IReadOnlyList<FactorisationAccuracy> Accuracy { get; init; }
    /// <summary>Native CUDA kernels in use (<see cref="LowRank.Torch.CudaNative.Status"/>).</summary>
    public required string Kernels { get; init; }
    /// <summary>Whether decompositions ran beside the next block's profiling (<see cref="CompressionReport.DecompositionOverlap"/>).</summary>
    public string? DecompositionOverlap { get; init; }
    /// <summary>AdaSVD: how the original model was profiled (<see cref="CompressionReport.OriginalPass"/>).</summary>
    public string? OriginalPass { get; init; }
    /// <summary>How the artifact was written (streamed beside the compression, or at the end), or "none".</summary>
    public string? Write { get; init; }
    /// <summary>"whole" or "staged (N blocks at most on disk)".</summary>
    public required string Checkpoint { get; init; }
    /// <summary>Staged checkpoints: seconds spent generating and writing blocks inside the end-to-end window (on the
    /// loader's read-ahead thread, overlapping the compression), and the peak bytes on disk.</summary>
    public double? StagingSeconds { get; init; }
    public double? StagedPeakGiB { get; init; }
    /// <summary>SHA-256 over every factor (name, A, B in block order), when asked for: two runs made the same factors iff equal.</summary>
    public string? FactorSha256 { get; init; }
    public required IReadOnlyList<string> Notes { get; init; }
}
