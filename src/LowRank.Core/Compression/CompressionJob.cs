using LowRank.Data;
using LowRank.Models;
using LowRank.Torch;

namespace LowRank.Compression;

/// <summary>Everything <c>dotnet lowrank compress</c> (and the MSBuild task through it) asks for.</summary>
public sealed record CompressionJobOptions
{
    /// <summary>A model folder (HF layout: config.json, safetensors, tokenizer).</summary>
    public required string Model { get; init; }
    public required string Out { get; init; }
    public required CompressionOptions Compression { get; init; }
    /// <summary>Calibration text (a file, folder, npm corpus, … as <see cref="TextSources.Load"/> reads it); null only for SVD.</summary>
    public string? Calibration { get; init; }
    public long? CalibrationByteStart { get; init; }
    public long? CalibrationByteEnd { get; init; }
    /// <summary>How the text becomes one token stream: "stream" (paragraphs joined by a newline token) or "plain".</summary>
    public string CalibrationProtocol { get; init; } = TokenProtocol.StreamName;
    public int Samples { get; init; } = CalibrationSampler.DefaultSamples;
    /// <summary>Null: 2048 or the model's context if shorter.</summary>
    public int? SeqLen { get; init; }
    public int CalibrationSeed { get; init; } = 42;
    public DeviceRequest Device { get; init; } = DeviceRequest.Auto;
    public string? LibTorch { get; init; }
    public bool Force { get; init; }
}

public sealed record CompressionJobResult(string Out, CompressionReport Report, CalibrationProtocol? Calibration);

/// <summary>Load → calibrate → compress → write, the workflow behind the command.</summary>
public static class CompressionJob
{
    public static CompressionJobResult Run(CompressionJobOptions job, IProgress<CompressionProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        job.Compression.Validate();
        CompressedModelWriter.CheckTarget(job.Out, job.Force);
        var needsData = job.Compression.Method != CompressionMethod.Svd;
        if (needsData && string.IsNullOrWhiteSpace(job.Calibration))
            throw new LrkException(ErrorCodes.BadArgument, $"{job.Compression.Method.Name()} needs calibration text: pass --calib FILE (only SVD works without)");

        progress?.Report(new CompressionProgress("load", 0, 0, $"loading {job.Model}"));
        using var loaded = ModelLoader.Load(job.Model, new ModelLoadOptions { Device = job.Device, LibTorch = job.LibTorch, LoadTokenizer = needsData });
        CalibrationSet? calibration = null;
        try
        {
            if (needsData)
            {
                var tokenizer = loaded.Tokenizer ?? throw new LrkException(ErrorCodes.BadTokenizer, $"{job.Model} has no tokenizer to encode the calibration text with");
                progress?.Report(new CompressionProgress("calibrate", 0, 0, $"sampling {job.Samples} calibration samples from {job.Calibration}"));
                var source = TextSources.Load(job.Calibration!, new TextSourceOptions { ByteStart = job.CalibrationByteStart, ByteEnd = job.CalibrationByteEnd });
                var stream = TokenProtocol.Parse(job.CalibrationProtocol).Encode(tokenizer, source, cancellationToken);
                calibration = CalibrationSampler.Sample(stream, source, new CalibrationOptions
                {
                    Samples = job.Samples,
                    SeqLen = job.SeqLen ?? CalibrationSampler.DefaultSeqLen(loaded.Config),
                    Seed = job.CalibrationSeed,
                });
            }
            var report = Compressor.Compress(loaded.Model, calibration?.Tokens, job.Compression, progress, cancellationToken);
            progress?.Report(new CompressionProgress("write", 0, 0, $"writing {job.Out}"));
            CompressedModelWriter.Write(job.Out, loaded.Model, loaded.Folder, report, calibration?.Protocol, job.Force, cancellationToken);
            return new CompressionJobResult(Path.GetFullPath(job.Out), report, calibration?.Protocol);
        }
        finally
        {
            calibration?.Dispose();
        }
    }
}
