using LowRank.Compression;
using LowRank.Data;
using LowRank.Models;
using LowRank.Torch;

namespace LowRank.Bench;

/// <summary>
/// What the compress-and-evaluate benchmarks (<c>bench methods</c>, <c>bench quant</c>) set up alike: the model, the
/// calibration and evaluation texts, the token protocol, the perplexity window, the calibration sampler's knobs, the
/// device and the option overrides applied to every run.
/// </summary>
public abstract record BenchmarkSetup
{
    public required string Model { get; init; }
    public required string Calibration { get; init; }
    public long? CalibrationByteStart { get; init; }
    public long? CalibrationByteEnd { get; init; }
    public required string Evaluation { get; init; }
    public long? EvaluationByteStart { get; init; }
    public long? EvaluationByteEnd { get; init; }
    public string Protocol { get; init; } = TokenProtocol.StreamName;
    public int Window { get; init; } = 512;
    public int Samples { get; init; } = CompressionDefaults.Samples;
    public int? SeqLen { get; init; }
    public int Seed { get; init; } = CompressionDefaults.Seed;
    public DeviceRequest Device { get; init; } = DeviceRequest.Auto;
    /// <summary>Option overrides applied to every run (<see cref="CompressionOptionsText"/>), e.g. BatchSize=16.</summary>
    public IReadOnlyList<string> Set { get; init; } = [];

    /// <summary>Reads both texts and encodes them with <see cref="Protocol"/> for <paramref name="original"/>.</summary>
    internal BenchmarkTexts LoadTexts(LoadedModel original, CancellationToken cancellationToken)
    {
        var tokenizer = original.Tokenizer ?? throw new LrkException(ErrorCodes.BadTokenizer, $"{Model} has no tokenizer");
        var protocol = TokenProtocol.Parse(Protocol);
        var evaluation = TextSources.Load(Evaluation, new TextSourceOptions { ByteStart = EvaluationByteStart, ByteEnd = EvaluationByteEnd });
        var evaluationTokens = protocol.Encode(tokenizer, evaluation, cancellationToken).Tokens;
        var calibration = TextSources.Load(Calibration, new TextSourceOptions { ByteStart = CalibrationByteStart, ByteEnd = CalibrationByteEnd });
        var calibrationStream = protocol.Encode(tokenizer, calibration, cancellationToken);
        var sampler = new CalibrationOptions
        {
            Samples = Samples,
            SeqLen = SeqLen ?? CalibrationSampler.DefaultSeqLen(original.Config),
            Seed = Seed,
        };
        return new BenchmarkTexts(protocol, evaluation, evaluationTokens, calibration, calibrationStream, sampler);
    }
}

/// <summary>The texts of a <see cref="BenchmarkSetup"/>, read and encoded once for all of a benchmark's runs.</summary>
internal sealed record BenchmarkTexts(TokenProtocol Protocol, SourceText EvaluationSource, int[] EvaluationTokens, SourceText CalibrationSource, TokenizedText CalibrationStream,
    CalibrationOptions Sampler)
{
    /// <summary>The calibration samples (the caller disposes them).</summary>
    public CalibrationSet SampleCalibration() => CalibrationSampler.Sample(CalibrationStream, CalibrationSource, Sampler);
}
