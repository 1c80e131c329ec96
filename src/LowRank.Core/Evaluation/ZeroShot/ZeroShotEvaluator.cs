using System.Diagnostics;
using System.Text.Json.Serialization;
using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Evaluation.ZeroShot;

public sealed record ZeroShotOptions
{
    /// <summary>Prepend BOS to every request (when the tokenizer has one). lm-evaluation-harness 0.3 did so for LLaMA
    /// through the tokenizer's default; 0.4 does not by default. Recorded in the result.</summary>
    public bool AddBos { get; init; } = true;

    /// <summary>Requests per forward pass (padded on the right to the longest).</summary>
    public int BatchSize { get; init; } = 16;
}

/// <summary>What the model made of one item: the summed log-likelihood of each choice and the predictions.</summary>
public sealed record ItemScore(string Id, int Gold, int Predicted, int? PredictedNorm, double[] LogLikelihoods, int[] ContinuationTokens);

public sealed record ZeroShotResult
{
    public required string Task { get; init; }
    public required string Format { get; init; }
    public required string Path { get; init; }
    public required int Items { get; init; }
    public required double Acc { get; init; }
    public required double AccStderr { get; init; }

    /// <summary>Null where the harness reports none (WinoGrande).</summary>
    public double? AccNorm { get; init; }
    public double? AccNormStderr { get; init; }
    public required bool Bos { get; init; }
    public required int TruncatedRequests { get; init; }
    public required double Seconds { get; init; }

    [JsonIgnore]
    public IReadOnlyList<ItemScore> Scores { get; init; } = [];
}

/// <summary>
/// Zero-shot multiple choice scored like lm-evaluation-harness's <c>loglikelihood</c> requests:
/// <list type="number">
/// <item>Trailing spaces of the context move to the front of the continuation (the harness's <c>_encode_pair</c>).</item>
/// <item>whole = encode(context + continuation), ctx = encode(context) (both with the dummy prefix, with BOS when
/// <see cref="ZeroShotOptions.AddBos"/>); the continuation's tokens are whole[len(ctx):]. An empty context is
/// replaced by [BOS] (or [EOS] without BOS).</item>
/// <item>The model reads (ctx + cont)[−(max positions + 1):][:−1]; the log-likelihood is the sum of
/// log_softmax(fp32 logits)[token] over the continuation's positions.</item>
/// <item>acc: argmax of the sums; acc_norm: argmax of sum / character count of the choice (the harness's
/// <c>len(choice)</c>, code points, leading space excluded). Ties go to the lowest index, as numpy.argmax does.
/// Standard errors are the harness's: sample standard deviation / √n.</item>
/// </list>
/// </summary>
public static class ZeroShotEvaluator
{
    /// <summary>A request ready to run: the model reads Tokens[..^1] and predicts Tokens[1..]; the last
    /// <see cref="ContinuationLength"/> predictions are the continuation.</summary>
    private sealed record Encoded(int Item, int Choice, int[] Tokens, int ContinuationLength, bool Truncated)
    {
        public int InputLength => Tokens.Length - 1;
    }

    public static ZeroShotResult Evaluate(IDecoderModel model, ITokenizer tokenizer, MultipleChoiceTask task, ZeroShotOptions? options = null,
        Action<int, int>? progress = null, CancellationToken cancellation = default)
    {
        options ??= new ZeroShotOptions();
        if (options.BatchSize < 1) throw new LrkException(ErrorCodes.BadArgument, $"the batch size must be at least 1 (got {options.BatchSize})");
        var clock = Stopwatch.StartNew();
        var maxLength = model.Config.MaxPositions;
        var requests = new List<Encoded>();
        for (var i = 0; i < task.Items.Count; i++)
        {
            var item = task.Items[i];
            for (var c = 0; c < item.Choices.Count; c++)
                requests.Add(Encode(tokenizer, item.Choices[c], options.AddBos, maxLength, i, c, task, item));
        }

        var logLikelihoods = task.Items.Select(item => new double[item.Choices.Count]).ToArray();
        var continuationTokens = task.Items.Select(item => new int[item.Choices.Count]).ToArray();
        // Longest first, like the harness: similar lengths share a batch and little is padded.
        var order = requests.OrderByDescending(r => r.InputLength).ToList();
        var done = 0;
        for (var start = 0; start < order.Count; start += options.BatchSize)
        {
            cancellation.ThrowIfCancellationRequested();
            var batch = order.GetRange(start, Math.Min(options.BatchSize, order.Count - start));
            var sums = ScoreBatch(model, batch);
            for (var b = 0; b < batch.Count; b++)
            {
                logLikelihoods[batch[b].Item][batch[b].Choice] = sums[b];
                continuationTokens[batch[b].Item][batch[b].Choice] = batch[b].ContinuationLength;
            }
            done += batch.Count;
            progress?.Invoke(done, order.Count);
        }

        var scores = new List<ItemScore>(task.Items.Count);
        var hasNorm = task.Items.All(i => i.NormLengths is not null);
        for (var i = 0; i < task.Items.Count; i++)
        {
            var item = task.Items[i];
            var lls = logLikelihoods[i];
            int? predictedNorm = item.NormLengths is { } lengths
                ? ArgMax(lls.Select((ll, c) => ll / lengths[c]).ToArray())
                : null;
            scores.Add(new ItemScore(item.Id, item.Gold, ArgMax(lls), predictedNorm, lls, continuationTokens[i]));
        }
        clock.Stop();
        var accuracy = scores.Select(s => s.Predicted == s.Gold ? 1.0 : 0.0).ToArray();
        var normAccuracy = hasNorm ? scores.Select(s => s.PredictedNorm == s.Gold ? 1.0 : 0.0).ToArray() : null;
        return new ZeroShotResult
        {
            Task = task.Name,
            Format = task.Format.ToString().ToLowerInvariant(),
            Path = task.Path,
            Items = task.Items.Count,
            Acc = accuracy.Average(),
            AccStderr = MeanStderr(accuracy),
            AccNorm = normAccuracy?.Average(),
            AccNormStderr = normAccuracy is null ? null : MeanStderr(normAccuracy),
            Bos = options.AddBos && tokenizer.BosId is not null,
            TruncatedRequests = requests.Count(r => r.Truncated),
            Seconds = clock.Elapsed.TotalSeconds,
            Scores = scores,
        };
    }

    /// <summary>The first index of the largest value (numpy.argmax's tie rule). NaN never wins.</summary>
    public static int ArgMax(IReadOnlyList<double> values)
    {
        var best = 0;
        for (var i = 1; i < values.Count; i++)
            if (values[i] > values[best] || double.IsNaN(values[best])) best = i;
        return best;
    }

    private static double MeanStderr(double[] values)
    {
        if (values.Length < 2) return double.NaN;
        var mean = values.Average();
        var variance = values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1);
        return Math.Sqrt(variance / values.Length);
    }

    private static Encoded Encode(ITokenizer tokenizer, ChoiceRequest request, bool addBos, int maxLength, int itemIndex, int choiceIndex,
        MultipleChoiceTask task, MultipleChoiceItem item)
    {
        var context = request.Context;
        var continuation = request.Continuation;
        var trimmed = context.TrimEnd();
        if (trimmed.Length < context.Length)
        {
            continuation = context[trimmed.Length..] + continuation;
            context = trimmed;
        }
        int[] contextTokens, continuationTokens;
        if (context.Length == 0)
        {
            var prefix = (addBos ? tokenizer.BosId : null) ?? tokenizer.BosId ?? tokenizer.EosId
                ?? throw new LrkException(ErrorCodes.BadTaskFile, $"{task.Path}: item {item.Id} has an empty context and the tokenizer has no BOS/EOS to condition on");
            contextTokens = [prefix];
            continuationTokens = [.. tokenizer.Encode(continuation, addBos: false, addDummyPrefix: true)];
        }
        else
        {
            var whole = tokenizer.Encode(context + continuation, addBos, addDummyPrefix: true);
            contextTokens = [.. tokenizer.Encode(context, addBos, addDummyPrefix: true)];
            continuationTokens = [.. whole.Skip(contextTokens.Length)];
        }
        if (continuationTokens.Length == 0)
            throw new LrkException(ErrorCodes.BadTaskFile, $"{task.Path}: item {item.Id} choice {choiceIndex + 1}: the continuation encodes to no tokens");
        int[] all = [.. contextTokens, .. continuationTokens];
        var truncated = all.Length > maxLength + 1;
        if (truncated) all = all[^(maxLength + 1)..];
        if (continuationTokens.Length > all.Length - 1)
            throw new LrkException(ErrorCodes.BadTaskFile, $"{task.Path}: item {item.Id} choice {choiceIndex + 1}: the continuation alone ({continuationTokens.Length} tokens) exceeds the model's {maxLength} positions");
        return new Encoded(itemIndex, choiceIndex, all, continuationTokens.Length, truncated);
    }

    /// <summary>Σ log p(continuation token) for each request of the batch (fp32 log-softmax, fp64 sums).</summary>
    private static double[] ScoreBatch(IDecoderModel model, List<Encoded> batch)
    {
        using var scope = NewDisposeScope();
        var length = batch.Max(r => r.InputLength);
        var ids = new long[batch.Count * length];
        var targets = new long[batch.Count * length];
        var mask = new bool[batch.Count * length];
        for (var b = 0; b < batch.Count; b++)
        {
            var request = batch[b];
            // right padding with token 0: causal attention keeps it from touching the real positions before it
            for (var p = 0; p < request.InputLength; p++)
            {
                ids[b * length + p] = request.Tokens[p];
                targets[b * length + p] = request.Tokens[p + 1];
            }
            for (var p = request.InputLength - request.ContinuationLength; p < request.InputLength; p++) mask[b * length + p] = true;
        }
        using var noGrad = torch.no_grad();
        var input = tensor(ids, [batch.Count, length], dtype: int64).to(model.Device);
        var logits = model.Logits(input);
        if (logits.dtype != float32) logits = logits.to_type(float32);
        var logProbs = nn.functional.log_softmax(logits, dim: -1)
            .gather(-1, tensor(targets, [batch.Count, length], dtype: int64).to(logits.device).unsqueeze(-1)).squeeze(-1);
        var selected = where(tensor(mask, [batch.Count, length]).to(logits.device), logProbs, zeros_like(logProbs));
        return selected.to_type(float64).sum(dim: 1).cpu().data<double>().ToArray();
    }
}
