using System.Diagnostics;
using System.Text.Json.Serialization;
using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Evaluation;

public sealed record PerplexityOptions
{
    /// <summary>Window length W in tokens (the papers use the model's context, 2048 for LLaMA).</summary>
    public required int WindowLength { get; init; }

    /// <summary>Stride S; null → W (non-overlapping windows).</summary>
    public int? Stride { get; init; }

    /// <summary>Windows per forward pass; null → <see cref="PerplexityEvaluator.DefaultBatch"/>.</summary>
    public int? BatchSize { get; init; }
}

/// <summary>A window whose summed NLL came out NaN or infinite. It is excluded from the mean and listed, never dropped silently.</summary>
public sealed record NonFiniteWindow(int Index, long Start, int Length, int ScoredTokens, double NllSum);

public sealed record PerplexityResult
{
    public required long StreamTokens { get; init; }
    public required int WindowLength { get; init; }
    public required int Stride { get; init; }
    public required int BatchSize { get; init; }
    public required int Windows { get; init; }

    /// <summary>Tokens scored over all windows, finite or not.</summary>
    public required long ScoredTokens { get; init; }

    /// <summary>Tokens of the finite windows: the denominator of <see cref="MeanNll"/>.</summary>
    public required long FiniteScoredTokens { get; init; }

    /// <summary>Mean negative log-likelihood in nats over the finite windows.</summary>
    public required double MeanNll { get; init; }

    /// <summary>exp(<see cref="MeanNll"/>).</summary>
    public required double Perplexity { get; init; }

    public required IReadOnlyList<NonFiniteWindow> NonFiniteWindows { get; init; }

    /// <summary>True when any window was non-finite: the perplexity then covers only part of the text.</summary>
    public bool Flagged => NonFiniteWindows.Count > 0;

    public required double Seconds { get; init; }
    public double TokensPerSecond => Seconds > 0 ? ScoredTokens / Seconds : 0;

    /// <summary>Mean NLL of each window in order (NaN/∞ for non-finite ones), for plots; not in the JSON.</summary>
    [JsonIgnore]
    public IReadOnlyList<double> WindowMeanNll { get; init; } = [];
}

/// <summary>
/// Perplexity of a decoder on one token stream over the windows of <see cref="PerplexityWindows"/>. Logits are fp32;
/// the loss is −log_softmax(logits)[target] per scored position; window sums are accumulated in fp64 and
/// PPL = exp(Σ NLL / scored tokens). Windows of equal length are batched. The model runs through
/// <see cref="IDecoderModel.Logits"/>, so a model in streaming mode goes block by block over each batch.
/// </summary>
public static class PerplexityEvaluator
{
    /// <summary>A batch size that keeps the fp32 logits of one batch near 256 MiB (at most 64 windows).</summary>
    public static int DefaultBatch(int windowLength, int vocabSize) =>
        (int)Math.Clamp((256L << 20) / 4 / Math.Max(1L, (long)windowLength * vocabSize), 1, 64);

    public static PerplexityResult Evaluate(IDecoderModel model, IReadOnlyList<int> tokens, PerplexityOptions options,
        Action<int, int>? progress = null, CancellationToken cancellation = default)
    {
        var stride = options.Stride ?? options.WindowLength;
        var windows = PerplexityWindows.Plan(tokens.Count, options.WindowLength, stride);
        if (windows.Count == 0)
            throw new LrkException(ErrorCodes.DataTooShort, $"the text gives {tokens.Count} token(s); perplexity needs at least 2");
        var batchSize = options.BatchSize ?? DefaultBatch(options.WindowLength, model.Config.VocabSize);
        if (batchSize < 1) throw new LrkException(ErrorCodes.BadArgument, $"the batch size must be at least 1 (got {batchSize})");

        var clock = Stopwatch.StartNew();
        var nllSums = new double[windows.Count];
        var done = 0;
        foreach (var batch in Batches(windows, batchSize))
        {
            cancellation.ThrowIfCancellationRequested();
            var sums = ScoreBatch(model, tokens, batch);
            for (var i = 0; i < batch.Count; i++) nllSums[batch[i].Index] = sums[i];
            done += batch.Count;
            progress?.Invoke(done, windows.Count);
        }
        clock.Stop();

        var nonFinite = new List<NonFiniteWindow>();
        double total = 0;
        long finiteTokens = 0;
        foreach (var window in windows)
        {
            var sum = nllSums[window.Index];
            if (double.IsFinite(sum))
            {
                total += sum;
                finiteTokens += window.Scored;
            }
            else
            {
                nonFinite.Add(new NonFiniteWindow(window.Index, window.Start, window.Length, window.Scored, sum));
            }
        }
        var mean = finiteTokens > 0 ? total / finiteTokens : double.NaN;
        return new PerplexityResult
        {
            StreamTokens = tokens.Count,
            WindowLength = options.WindowLength,
            Stride = stride,
            BatchSize = batchSize,
            Windows = windows.Count,
            ScoredTokens = PerplexityWindows.ScoredTokens(windows),
            FiniteScoredTokens = finiteTokens,
            MeanNll = mean,
            Perplexity = Math.Exp(mean),
            NonFiniteWindows = nonFinite,
            WindowMeanNll = [.. windows.Select(w => nllSums[w.Index] / w.Scored)],
            Seconds = clock.Elapsed.TotalSeconds,
        };
    }

    /// <summary>Consecutive windows of equal length, at most <paramref name="batchSize"/> at a time.</summary>
    private static IEnumerable<List<PerplexityWindow>> Batches(IReadOnlyList<PerplexityWindow> windows, int batchSize)
    {
        var batch = new List<PerplexityWindow>(batchSize);
        foreach (var window in windows)
        {
            if (batch.Count == batchSize || (batch.Count > 0 && batch[0].Length != window.Length))
            {
                yield return batch;
                batch = new List<PerplexityWindow>(batchSize);
            }
            batch.Add(window);
        }
        if (batch.Count > 0) yield return batch;
    }

    /// <summary>Σ NLL of the scored positions of each window of the batch (fp64).</summary>
    private static double[] ScoreBatch(IDecoderModel model, IReadOnlyList<int> tokens, List<PerplexityWindow> batch)
    {
        using var scope = NewDisposeScope();
        var length = batch[0].Length;
        var ids = new long[batch.Count * length];
        var mask = new float[batch.Count * (length - 1)];
        for (var b = 0; b < batch.Count; b++)
        {
            var window = batch[b];
            for (var j = 0; j < length; j++) ids[b * length + j] = tokens[(int)(window.Start + j)];
            // position j of the targets is token j+1 of the window
            for (var j = window.ScoreFrom - 1; j < length - 1; j++) mask[b * (length - 1) + j] = 1f;
        }
        using var noGrad = torch.no_grad();
        var input = tensor(ids, [batch.Count, length], dtype: int64).to(model.Device);
        var logits = model.Logits(input);
        if (logits.dtype != float32) logits = logits.to_type(float32);
        var logProbs = nn.functional.log_softmax(logits[.., ..^1, ..], dim: -1);
        var targets = input[.., 1..].unsqueeze(-1);
        var nll = -logProbs.gather(-1, targets).squeeze(-1);
        var weights = tensor(mask, [batch.Count, length - 1]).to(nll.device);
        // 0 × NaN is NaN, so a non-finite score anywhere in the scored part poisons only its own window, as it should;
        // unscored positions are removed with where() rather than multiplied, so they cannot.
        var scored = where(weights > 0, nll, zeros_like(nll));
        var sums = scored.to_type(float64).sum(dim: 1).cpu();
        return sums.data<double>().ToArray();
    }
}
