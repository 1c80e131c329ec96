using LowRank.Compression;
using LowRank.Models;

namespace LowRank.Data;

/// <summary>Which text the calibration samples are drawn from and how: the text and its byte range, the token protocol,
/// and the sampler's N, L and seed. One record for every compressing caller (<c>compress</c>'s job, <c>bench methods</c>,
/// <c>bench quant</c>), as <see cref="Evaluation.TextPerplexitySpec"/> is for a perplexity measurement.</summary>
public sealed record CalibrationSpec
{
    /// <summary>A file, folder or <c>npm:&lt;corpus&gt;</c>, as <see cref="TextSources.Load"/> reads it; null = no
    /// calibration text (only SVD and RTN compress without one).</summary>
    public string? Text { get; init; }
    public long? ByteStart { get; init; }
    public long? ByteEnd { get; init; }
    /// <summary>How the text becomes one token stream: "stream" (paragraphs joined by a newline token) or "plain".</summary>
    public string Protocol { get; init; } = TokenProtocol.StreamName;
    /// <summary>Samples N.</summary>
    public int Samples { get; init; } = CompressionDefaults.Samples;
    /// <summary>Tokens per sample L; null = 2048 or the model's context if shorter (<see cref="CalibrationSampler.DefaultSeqLen"/>).</summary>
    public int? SeqLen { get; init; }
    /// <summary>Seed of the sampler (and of AdaSVD's shuffle, through the compression options).</summary>
    public int Seed { get; init; } = CompressionDefaults.Seed;

    /// <summary>Whether a calibration text is given.</summary>
    public bool HasText => !string.IsNullOrWhiteSpace(Text);

    /// <summary>Reads <see cref="Text"/>'s byte range (the caller checked <see cref="HasText"/>).</summary>
    public SourceText LoadText() => TextSources.Load(Text!, new TextSourceOptions { ByteStart = ByteStart, ByteEnd = ByteEnd });

    /// <summary>The sampler's options for a model of <paramref name="config"/> (L defaulted to its context).</summary>
    public CalibrationOptions Sampler(ModelConfig config) => new()
    {
        Samples = Samples,
        SeqLen = SeqLen ?? CalibrationSampler.DefaultSeqLen(config),
        Seed = Seed,
    };
}
