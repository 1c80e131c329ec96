using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models;

public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 256;

    /// <summary>0 = greedy (argmax, lowest id on ties); otherwise sample from softmax(logits / T).</summary>
    public double Temperature { get; init; }

    /// <summary>Seed of the sampler (sampling on the CPU, so a seed repeats on every device).</summary>
    public long Seed { get; init; }

    /// <summary>Generation stops, without emitting it, at the first of these tokens (BOS and EOS for llama2.c parity).</summary>
    public IReadOnlyCollection<int> StopTokens { get; init; } = [];
}

/// <summary>Why generation ended: a stop token, the token budget, or the model's position limit.</summary>
public enum StopReason
{
    StopToken,
    MaxNewTokens,
    MaxPositions,
}

public sealed record GenerationResult(IReadOnlyList<int> PromptIds, IReadOnlyList<int> NewIds, StopReason StopReason, int? StopToken);

/// <summary>Autoregressive decoding with a KV cache: the prompt in one forward, then one token per step.</summary>
public static class TextGenerator
{
    /// <param name="onToken">Called with each new token as soon as it is chosen (streaming output).</param>
    public static GenerationResult Generate(IDecoderModel model, IReadOnlyList<int> promptIds, GenerationOptions options,
        Action<int>? onToken = null, CancellationToken cancellationToken = default)
    {
        if (promptIds.Count == 0) throw new LrkException(ErrorCodes.BadArgument, "generation needs at least one prompt token (e.g. BOS)");
        if (options.MaxNewTokens < 0) throw new LrkException(ErrorCodes.BadArgument, $"max new tokens must be >= 0 (got {options.MaxNewTokens})");
        if (options.Temperature < 0 || !double.IsFinite(options.Temperature))
            throw new LrkException(ErrorCodes.BadArgument, $"temperature must be a finite number >= 0 (got {options.Temperature})");
        var vocab = model.Config.VocabSize;
        foreach (var id in promptIds)
        {
            if (id < 0 || id >= vocab) throw new LrkException(ErrorCodes.BadArgument, $"prompt token {id} is outside the vocabulary (0..{vocab - 1})");
        }
        var maxPositions = model.Config.MaxPositions;
        if (promptIds.Count > maxPositions)
            throw new LrkException(ErrorCodes.BadArgument, $"the prompt has {promptIds.Count} tokens, more than the model's {maxPositions} positions");

        var sampler = options.Temperature > 0 ? new Generator((ulong)options.Seed) : null;
        var generated = new List<int>();
        using var cache = model.CreateCache();
        using var grad = no_grad();
        var next = promptIds.ToArray();
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (generated.Count >= options.MaxNewTokens) return new GenerationResult(promptIds, generated, StopReason.MaxNewTokens, null);
                if (promptIds.Count + generated.Count >= maxPositions) return new GenerationResult(promptIds, generated, StopReason.MaxPositions, null);
                int token;
                using (var scope = NewDisposeScope())
                {
                    using var input = tensor(next.Select(i => (long)i).ToArray(), [1, next.Length], ScalarType.Int64, model.Device);
                    var logits = model.Logits(input, cache)[0, -1];
                    token = Choose(logits, options.Temperature, sampler);
                }
                if (options.StopTokens.Contains(token)) return new GenerationResult(promptIds, generated, StopReason.StopToken, token);
                generated.Add(token);
                onToken?.Invoke(token);
                next = [token];
            }
        }
        finally
        {
            sampler?.Dispose();
        }
    }

    private static int Choose(Tensor logits, double temperature, Generator? sampler)
    {
        using var scope = NewDisposeScope();
        var values = logits.to(ScalarType.Float64, CPU);
        if (sampler is null) return (int)values.argmax().item<long>();
        var probabilities = nn.functional.softmax(values / temperature, 0);
        return (int)probabilities.multinomial(1, generator: sampler).item<long>();
    }
}
