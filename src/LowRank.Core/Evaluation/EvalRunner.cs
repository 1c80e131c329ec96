using System.Reflection;
using LowRank.Data;
using LowRank.Evaluation.ZeroShot;
using LowRank.Models;

namespace LowRank.Evaluation;

/// <summary>What to evaluate: a perplexity text (optional), task files (optional), and the protocol settings.</summary>
public sealed record EvalRequest
{
    /// <summary>A text location (<see cref="TextSources"/>: a path, <c>path[start:end]</c>, <c>npm:NAME</c>), or null for none.</summary>
    public string? Text { get; init; }

    public TextSourceOptions TextOptions { get; init; } = new();

    public string Protocol { get; init; } = TokenProtocol.StreamName;

    public bool Bos { get; init; } = true;

    /// <summary>Window length; null → <see cref="CalibrationSampler.DefaultSeqLen"/> (the model's context, at most 2048).</summary>
    public int? SeqLen { get; init; }

    public int? Stride { get; init; }

    /// <summary>Windows (perplexity) or requests (tasks) per forward pass; null → a size that keeps logits near 256 MiB.</summary>
    public int? Batch { get; init; }

    /// <summary>Task files (<see cref="TaskFile"/>: a path, or <c>arc:path</c> etc. to force the layout).</summary>
    public IReadOnlyList<string> Tasks { get; init; } = [];
}

/// <summary>The evaluation behind <c>dotnet lowrank eval</c>, usable from code (the compressor evaluates its outputs
/// the same way). Inputs are all read and checked before the first forward pass.</summary>
public static class EvalRunner
{
    public static string ToolVersion =>
        "LowRank.Build " + (typeof(EvalRunner).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "?");

    public static EvalReport Run(LoadedModel loaded, string modelLocation, EvalRequest request,
        Action<string, int, int>? progress = null, CancellationToken cancellation = default)
    {
        if (request.Text is null && request.Tasks.Count == 0)
            throw new LrkException(ErrorCodes.BadArgument, "nothing to evaluate: give --text and/or --tasks");
        var tokenizer = loaded.Tokenizer ?? throw new LrkException(ErrorCodes.BadTokenizer, $"{loaded.Folder} has no tokenizer; evaluation needs one");
        var model = loaded.Model;

        var source = request.Text is null ? null : TextSources.Load(request.Text, request.TextOptions);
        var protocol = TokenProtocol.Parse(request.Protocol, request.Bos);
        var tasks = request.Tasks.Select(TaskFile.Read).ToList();
        var seqLen = request.SeqLen ?? CalibrationSampler.DefaultSeqLen(model.Config);
        if (seqLen > model.Config.MaxPositions)
            throw new LrkException(ErrorCodes.BadArgument, $"--seq-len {seqLen} is longer than the model's context ({model.Config.MaxPositions} positions)");

        TextSummary? text = null;
        PerplexityResult? perplexity = null;
        if (source is not null)
        {
            var tokens = protocol.Encode(tokenizer, source, cancellation);
            text = TextSummary.From(source, tokens);
            perplexity = PerplexityEvaluator.Evaluate(model, tokens.Tokens,
                new PerplexityOptions { WindowLength = seqLen, Stride = request.Stride, BatchSize = request.Batch },
                progress is null ? null : (done, total) => progress("perplexity windows", done, total), cancellation);
        }
        var results = new List<ZeroShotResult>();
        foreach (var task in tasks)
        {
            results.Add(ZeroShotEvaluator.Evaluate(model, tokenizer, task,
                new ZeroShotOptions { AddBos = request.Bos, BatchSize = request.Batch ?? 16 },
                progress is null ? null : (done, total) => progress($"{task.Name} requests", done, total), cancellation));
        }
        return new EvalReport
        {
            Tool = ToolVersion,
            CreatedUtc = DateTimeOffset.UtcNow,
            Model = Summarize(loaded, modelLocation),
            Text = text,
            Perplexity = perplexity,
            Tasks = results,
        };
    }

    public static ModelSummary Summarize(LoadedModel loaded, string location)
    {
        var model = loaded.Model;
        long linear = 0;
        for (var i = 0; i < model.BlockCount; i++) linear += model.BlockLinears(i).Sum(l => l.ParameterCount);
        return new ModelSummary
        {
            Location = location,
            Architecture = model.Config.Architecture,
            Layers = model.BlockCount,
            HiddenSize = model.Config.HiddenSize,
            VocabSize = model.Config.VocabSize,
            MaxPositions = model.Config.MaxPositions,
            LinearParameters = linear,
            Device = model.Device.ToString(),
        };
    }
}
