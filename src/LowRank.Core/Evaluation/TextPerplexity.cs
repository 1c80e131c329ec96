using LowRank.Data;
using LowRank.Models;

namespace LowRank.Evaluation;

/// <summary>Which text a perplexity is measured on and how: the same record describes a measurement during
/// <c>compress</c> (stored in the artifact's manifest) and a later <c>eval</c>, so the two can be compared.</summary>
public sealed record TextPerplexitySpec
{
    /// <summary>A file, folder or <c>npm:&lt;corpus&gt;</c>, as <see cref="TextSources.Load"/> reads it.</summary>
    public required string Text { get; init; }
    public long? ByteStart { get; init; }
    public long? ByteEnd { get; init; }
    public string Protocol { get; init; } = TokenProtocol.StreamName;

    /// <summary>Window length; null = the model's context, at most 2048 (the papers' length).</summary>
    public int? WindowLength { get; init; }

    public int? BatchSize { get; init; }
}

public sealed record TextPerplexityResult(TextSummary Text, PerplexityResult Perplexity);

/// <summary>Loads a text, encodes it under a token protocol once, and measures perplexity over non-overlapping windows.</summary>
public static class TextPerplexity
{
    public static int DefaultWindow(ModelConfig config) => Math.Min(CalibrationSampler.PaperSeqLen, config.MaxPositions);

    /// <summary>The text and its tokens, encoded once so several models can be measured on exactly the same stream.</summary>
    public static (SourceText Source, TokenizedText Tokens) Encode(ITokenizer tokenizer, TextPerplexitySpec spec, CancellationToken cancellationToken = default)
    {
        var source = TextSources.Load(spec.Text, new TextSourceOptions { ByteStart = spec.ByteStart, ByteEnd = spec.ByteEnd });
        return (source, TokenProtocol.Parse(spec.Protocol).Encode(tokenizer, source, cancellationToken));
    }

    public static TextPerplexityResult Measure(IDecoderModel model, SourceText source, TokenizedText tokens, TextPerplexitySpec spec,
        IProgress<ProgressUpdate>? progress = null, string stage = "evaluate", CancellationToken cancellationToken = default)
    {
        var result = PerplexityEvaluator.Evaluate(model, tokens.Tokens,
            new PerplexityOptions { WindowLength = spec.WindowLength ?? DefaultWindow(model.Config), BatchSize = spec.BatchSize },
            (done, total) => progress?.Report(new ProgressUpdate(stage, $"{done}/{total} windows", done - 1, total)),
            cancellationToken);
        return new TextPerplexityResult(TextSummary.From(source, tokens), result);
    }
}
