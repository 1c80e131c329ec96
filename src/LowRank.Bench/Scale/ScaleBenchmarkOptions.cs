using LowRank.Compression;
using LowRank.Torch;

namespace LowRank.Bench;

public enum CheckpointStaging
{
    Auto,
    Whole,
    Staged,
}

public sealed record ScaleBenchmarkOptions
{
    public required ScaleShape Shape { get; init; }
    /// <summary>Decoder blocks to synthesise (null = the shape's); fewer blocks give a per-block time to extrapolate.</summary>
    public int? Layers { get; init; }
    public CompressionMethod Method { get; init; } = CompressionMethod.SvdLlm;
    public double Ratio { get; init; } = 0.5;
    public int Samples { get; init; } = 256;
    public int SeqLen { get; init; } = 2048;
    public int BatchSize { get; init; } = 16;
    public DeviceRequest Device { get; init; } = DeviceRequest.Auto;
    /// <summary>Where the synthetic checkpoint and the compressed output go (reused when the checkpoint is already there).</summary>
    public required string WorkFolder { get; init; }
    public int Seed { get; init; } = 1234;
    /// <summary>Block-0 linears whose factorisation is checked against an fp64 reference after the run.</summary>
    public IReadOnlyList<string> AccuracyKinds { get; init; } = ["q_proj", "gate_proj", "down_proj"];
    /// <summary>Calibration samples whose block-0 inputs make the Grams of the accuracy check (0 = one batch, so the
    /// Gram is accumulated over as many tokens as the pipeline's per-batch products).</summary>
    public int AccuracySamples { get; init; }

    /// <summary>Write block shards while compressing (<see cref="LowRank.Artifacts.StreamedArtifact"/>), as <c>compress</c> does; false = all at the end.</summary>
    public bool StreamWrite { get; init; } = true;
    /// <summary>Where the checkpoint lives: a whole file set on disk, staged block by block (<see cref="StagedCheckpoint"/>),
    /// or Auto = staged when the whole checkpoint would not fit in 80% of the free disk space.</summary>
    public CheckpointStaging Staging { get; init; } = CheckpointStaging.Auto;
    /// <summary>Blocks a staged checkpoint keeps on disk at most.</summary>
    public int StagedBlocks { get; init; } = 4;
    /// <summary>Also hash every factor after the run (<see cref="ScaleBenchmarkResult.FactorSha256"/>; outside the timed window).</summary>
    public bool Checksum { get; init; }
    public bool WriteOutput { get; init; } = true;
    /// <summary>Extra compression options Name=Value (as <c>--set</c>).</summary>
    public IReadOnlyList<string> Set { get; init; } = [];
}
