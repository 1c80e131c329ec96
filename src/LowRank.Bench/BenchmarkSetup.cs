using LowRank.Compression;
using LowRank.Data;
using LowRank.Models;
using LowRank.Torch;

namespace LowRank.Bench;

/// <summary>
/// What the compress-and-evaluate benchmarks (<c>bench methods</c>, <c>bench quant</c>) set up alike: the model, the
/// calibration text and sampler (<see cref="CalibrationSpec"/>), the evaluation text, the perplexity window, the device
/// and the option overrides applied to every run.
/// </summary>
public abstract record BenchmarkSetup
{
    public required string Model { get; init; }
    /// <summary>The calibration text and sampler; its <see cref="CalibrationSpec.Protocol"/> encodes both texts.</summary>
    public required CalibrationSpec Calibration { get; init; }
    public required string Evaluation { get; init; }
    public long? EvaluationByteStart { get; init; }
    public long? EvaluationByteEnd { get; init; }
    public int Window { get; init; } = 512;
    public DeviceRequest Device { get; init; } = DeviceRequest.Auto;
    /// <summary>Option overrides applied to every run (<see cref="CompressionOptionsText"/>), e.g. BatchSize=16.</summary>
    public IReadOnlyList<string> Set { get; init; } = [];

    /// <summary>Reads both texts and encodes them with the calibration's protocol for <paramref name="original"/>.</summary>
    internal BenchmarkTexts LoadTexts(LoadedModel original, CancellationToken cancellationToken)
    {
        var tokenizer = original.Tokenizer ?? throw new LrkException(ErrorCodes.BadTokenizer, $"{Model} has no tokenizer");
        if (Calibration.Text is null) throw new LrkException(ErrorCodes.BadArgument, "the benchmark needs a calibration text (--calib)");
        var protocol = TokenProtocol.Parse(Calibration.Protocol);
        var evaluation = TextSources.Load(Evaluation, new TextSourceOptions { ByteStart = EvaluationByteStart, ByteEnd = EvaluationByteEnd });
        var evaluationTokens = protocol.Encode(tokenizer, evaluation, cancellationToken).Tokens;
        var calibration = Calibration.LoadText();
        var calibrationStream = protocol.Encode(tokenizer, calibration, cancellationToken);
        return new BenchmarkTexts(protocol, evaluation, evaluationTokens, calibration, calibrationStream, Calibration.Sampler(original.Config));
    }
}

/// <summary>The texts of a <see cref="BenchmarkSetup"/>, read and encoded once for all of a benchmark's runs.</summary>
internal sealed record BenchmarkTexts(TokenProtocol Protocol, SourceText EvaluationSource, int[] EvaluationTokens, SourceText CalibrationSource, TokenizedText CalibrationStream,
    CalibrationOptions Sampler)
{
    /// <summary>The calibration samples (the caller disposes them).</summary>
    public CalibrationSet SampleCalibration() => CalibrationSampler.Sample(CalibrationStream, CalibrationSource, Sampler);
}
