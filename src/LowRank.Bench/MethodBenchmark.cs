using System.Diagnostics;
using System.Globalization;
using System.Text;
using LowRank.Compression;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Evaluation.ZeroShot;
using LowRank.Models;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Bench;

/// <summary>What <c>dotnet lowrank bench methods</c> measures: every method × ratio on one model, one calibration set,
/// one evaluation text.</summary>
public sealed record MethodBenchmarkOptions : BenchmarkSetup
{
    public required IReadOnlyList<CompressionMethod> Methods { get; init; }
    /// <summary>Extra rows: a method with its own option overrides (ablations), after <see cref="Methods"/>.</summary>
    public IReadOnlyList<MethodVariant> Variants { get; init; } = [];
    public required IReadOnlyList<double> Ratios { get; init; }
    /// <summary>Held-out samples of the calibration text (<see cref="HeldOutSampler"/>): their perplexity is reported beside
    /// the evaluation text's, as the number defaults are chosen on. 0 = none.</summary>
    public int HeldOut { get; init; }
    /// <summary>Zero-shot task files scored for the original and every row.</summary>
    public IReadOnlyList<string> Tasks { get; init; } = [];
    /// <summary>Also run <see cref="CompressionDiagnosis"/> on every row (calibration and held-out samples).</summary>
    public bool Diagnose { get; init; }
}

/// <summary>A row of the benchmark: <paramref name="Label"/> (as printed), the method and its option overrides.</summary>
public sealed record MethodVariant(string Label, CompressionMethod Method, IReadOnlyList<string> Set)
{
    /// <summary>Parses <c>LABEL=METHOD[;Name=Value…]</c>, e.g. <c>adasvd-uniform=adasvd;AdaSvdAdaptiveRatio=false</c>.</summary>
    public static MethodVariant Parse(string text)
    {
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0 || equals == text.Length - 1)
            throw new LrkException(ErrorCodes.BadArgument, $"--variant '{text}' is not LABEL=METHOD[;Name=Value…]");
        var parts = text[(equals + 1)..].Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new LrkException(ErrorCodes.BadArgument, $"--variant '{text}' names no method");
        return new MethodVariant(text[..equals].Trim(), CompressionMethods.Parse(parts[0]), parts[1..]);
    }
}

/// <summary>Accuracy on one zero-shot task file.</summary>
public sealed record TaskScore(string Task, int Items, double Acc, double AccStderr, double? AccNorm);

public sealed record MethodBenchmarkRow(
    string Method, double RequestedRatio, double AchievedLinearRatio, double AchievedModelRatio,
    double Perplexity, double MeanNll, int NonFiniteWindows, double CompressSeconds, double EvaluateSeconds, CompressionReport Report)
{
    /// <summary>The row's label: the method's name, or a variant's label.</summary>
    public string Label { get; init; } = Method;
    /// <summary>The option overrides of this row beyond the benchmark's common ones.</summary>
    public IReadOnlyList<string> Set { get; init; } = [];
    /// <summary>Perplexity of the held-out calibration samples (null without <see cref="MethodBenchmarkOptions.HeldOut"/>).</summary>
    public double? HeldOutPerplexity { get; init; }
    public IReadOnlyList<TaskScore> Tasks { get; init; } = [];
    public ModelDiagnosis? Diagnosis { get; init; }
}

public sealed record MethodBenchmarkResult(
    string Model, double OriginalPerplexity, double OriginalMeanNll, long ScoredTokens, string Evaluation, string Protocol, int Window,
    CalibrationProtocol Calibration, string Device, string Machine, string DateUtc, IReadOnlyList<MethodBenchmarkRow> Rows)
{
    public int HeldOutSamples { get; init; }
    public double? OriginalHeldOutPerplexity { get; init; }
    public IReadOnlyList<TaskScore> OriginalTasks { get; init; } = [];

    /// <summary>PPL − original PPL.</summary>
    public double Excess(MethodBenchmarkRow row) => row.Perplexity - OriginalPerplexity;

    /// <summary>The share of SVD-LLM's excess perplexity (same ratio) that <paramref name="row"/> removes:
    /// 1 − excess(row) / excess(SVD-LLM); null without an SVD-LLM row at that ratio.</summary>
    public double? ExcessRemoved(MethodBenchmarkRow row)
    {
        var reference = Rows.FirstOrDefault(r => r.Label == CompressionMethod.SvdLlm.Name() && r.RequestedRatio == row.RequestedRatio);
        return reference is null || Excess(reference) <= 0 ? null : 1 - Excess(row) / Excess(reference);
    }

    /// <summary>Tables: perplexity, excess perplexity (and the share of SVD-LLM's removed), held-out perplexity and task
    /// accuracy when measured; one row per method or variant, one column per ratio.</summary>
    public string Markdown()
    {
        var ratios = Rows.Select(r => r.RequestedRatio).Distinct().Order().ToArray();
        var labels = Rows.Select(r => r.Label).Distinct().ToArray();
        var text = new StringBuilder();
        void Table(string title, string original, Func<MethodBenchmarkRow, string> cell)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{title}").AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"| method | {string.Join(" | ", ratios.Select(r => $"CR {r:0.##}"))} |");
            text.AppendLine(CultureInfo.InvariantCulture, $"|---|{string.Concat(ratios.Select(_ => "---:|"))}");
            text.AppendLine(CultureInfo.InvariantCulture, $"| original | {string.Join(" | ", ratios.Select(_ => original))} |");
            foreach (var label in labels)
            {
                var cells = ratios.Select(ratio => Rows.FirstOrDefault(r => r.Label == label && r.RequestedRatio == ratio) is { } row ? cell(row) : "–");
                text.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {string.Join(" | ", cells)} |");
            }
            text.AppendLine();
        }
        Table("Perplexity (evaluation text)", Format(OriginalPerplexity),
            row => Format(row.Perplexity) + (row.NonFiniteWindows > 0 ? $" ({row.NonFiniteWindows} non-finite windows)" : ""));
        Table("Excess perplexity (PPL − original; in brackets the share of SVD-LLM's excess removed)", "0",
            row => Format(Excess(row)) + (ExcessRemoved(row) is { } share && row.Label != CompressionMethod.SvdLlm.Name()
                ? string.Create(CultureInfo.InvariantCulture, $" ({share * 100:+0.0;−0.0}%)") : ""));
        if (OriginalHeldOutPerplexity is { } heldOut)
            Table($"Perplexity of {HeldOutSamples} held-out calibration samples", Format(heldOut), row => row.HeldOutPerplexity is { } p ? Format(p) : "–");
        foreach (var task in OriginalTasks)
        {
            Table($"Zero-shot accuracy: {task.Task} ({task.Items} items, ± {task.AccStderr:F3})", task.Acc.ToString("F3", CultureInfo.InvariantCulture),
                row => row.Tasks.FirstOrDefault(t => t.Task == task.Task) is { } score ? score.Acc.ToString("F3", CultureInfo.InvariantCulture) : "–");
        }
        return text.ToString();
    }

    /// <summary>The diagnosis of every row that has one (<see cref="MethodBenchmarkOptions.Diagnose"/>): KL to the original
    /// model and the hidden-state drift per block, on the calibration samples / held-out samples.</summary>
    public string DiagnosisMarkdown()
    {
        var rows = Rows.Where(r => r.Diagnosis is not null).ToArray();
        if (rows.Length == 0) return "";
        static string Pair(SplitValue v, string format) =>
            v.Calibration.ToString(format, CultureInfo.InvariantCulture) + (v.HeldOut is { } h ? " / " + h.ToString(format, CultureInfo.InvariantCulture) : "");
        var blocks = rows[0].Diagnosis!.Blocks.Count;
        var text = new StringBuilder();
        text.AppendLine("Diagnosis (calibration samples / held-out samples): mean KL(original ‖ compressed) per token, and per block the drift ‖h′ − h‖² / ‖h‖² of the hidden state after it").AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"| method | CR | KL | {string.Join(" | ", Enumerable.Range(0, blocks).Select(b => $"drift {b}"))} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"|---|---:|---:|{string.Concat(Enumerable.Range(0, blocks).Select(_ => "---:|"))}");
        foreach (var row in rows)
        {
            var d = row.Diagnosis!;
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Label} | {row.RequestedRatio:0.##} | {Pair(d.Kl, "F4")} | {string.Join(" | ", d.Blocks.Select(b => Pair(b.Drift, "F4")))} |");
        }
        text.AppendLine();
        var kinds = rows[0].Diagnosis!.Linears.Select(l => l.Kind).Distinct().ToArray();
        text.AppendLine("Per linear kind, mean over blocks (held-out samples where measured): own-input error ‖(W − W′)X′‖²/‖WX′‖² · error against the original output ‖WX_o − W′X′‖²/‖WX_o‖²").AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"| method | CR | {string.Join(" | ", kinds)} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"|---|---:|{string.Concat(kinds.Select(_ => "---:|"))}");
        foreach (var row in rows)
        {
            var linears = row.Diagnosis!.Linears;
            var cells = kinds.Select(kind =>
            {
                var of = linears.Where(l => l.Kind == kind).ToArray();
                var own = of.Average(l => l.OwnInputs.HeldOut ?? l.OwnInputs.Calibration);
                var target = of.Average(l => l.OriginalTarget.HeldOut ?? l.OriginalTarget.Calibration);
                return string.Create(CultureInfo.InvariantCulture, $"{own:F4} · {target:F4}");
            });
            text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Label} | {row.RequestedRatio:0.##} | {string.Join(" | ", cells)} |");
        }
        return text.AppendLine().ToString();
    }

    private static string Format(double ppl) => Math.Abs(ppl) switch
    {
        < 100 => ppl.ToString("F4", CultureInfo.InvariantCulture),
        < 10_000 => ppl.ToString("F2", CultureInfo.InvariantCulture),
        _ => ppl.ToString("0.###E+0", CultureInfo.InvariantCulture),
    };
}

/// <summary>Compress-and-evaluate over methods and ratios. The calibration samples and the evaluation stream are made once;
/// the model is loaded fresh for every run.</summary>
public static class MethodBenchmark
{
    public static MethodBenchmarkResult Run(MethodBenchmarkOptions options, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        using var original = ModelLoader.Load(options.Model, new ModelLoadOptions { Device = options.Device });
        var texts = options.LoadTexts(original, cancellationToken);
        var tokenizer = original.Tokenizer!; // LoadTexts has checked it
        var (protocol, evalTokens) = (texts.Protocol, texts.EvaluationTokens);
        using var calibration = texts.SampleCalibration();
        using var heldOut = options.HeldOut > 0 ? HeldOutSampler.Sample(texts.CalibrationStream, texts.Sampler, options.HeldOut) : null;
        var tasks = options.Tasks.Select(TaskFile.Read).ToArray();
        var perplexity = new PerplexityOptions { WindowLength = options.Window };
        var baseline = PerplexityEvaluator.Evaluate(original.Model, evalTokens, perplexity, cancellation: cancellationToken);
        var baselineHeldOut = heldOut is null ? (double?)null : SamplePerplexity(original.Model, heldOut, cancellationToken: cancellationToken);
        var baselineTasks = Score(original.Model, tokenizer, tasks, cancellationToken);
        log?.Invoke($"original: PPL {baseline.Perplexity:F4} over {baseline.ScoredTokens:N0} tokens ({baseline.Seconds:F1} s)" +
            (baselineHeldOut is { } h ? $"; held-out PPL {h:F4}" : "") + string.Concat(baselineTasks.Select(t => $"; {t.Task} acc {t.Acc:F3}")));

        var variants = options.Methods.Select(m => new MethodVariant(m.Name(), m, [])).Concat(options.Variants).ToArray();
        var rows = new List<MethodBenchmarkRow>();
        foreach (var variant in variants)
        {
            foreach (var ratio in options.Ratios)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var loaded = ModelLoader.Load(options.Model, new ModelLoadOptions { Device = options.Device, LoadTokenizer = false });
                var compression = CompressionOptionsText.Apply(new CompressionOptions { Method = variant.Method, Ratio = ratio, Seed = options.Calibration.Seed },
                    options.Set.Concat(variant.Set));
                var clock = Stopwatch.StartNew();
                var report = Compressor.Compress(loaded.Model, calibration.Tokens, compression, cancellationToken: cancellationToken);
                var compressSeconds = clock.Elapsed.TotalSeconds;
                var result = PerplexityEvaluator.Evaluate(loaded.Model, evalTokens, perplexity, cancellation: cancellationToken);
                var row = new MethodBenchmarkRow(variant.Method.Name(), ratio, report.Ratio.AchievedLinearRatio, report.Ratio.AchievedModelRatio,
                    result.Perplexity, result.MeanNll, result.NonFiniteWindows.Count, compressSeconds, result.Seconds, report)
                {
                    Label = variant.Label,
                    Set = variant.Set,
                    HeldOutPerplexity = heldOut is null ? null : SamplePerplexity(loaded.Model, heldOut, cancellationToken: cancellationToken),
                    Tasks = Score(loaded.Model, tokenizer, tasks, cancellationToken),
                    Diagnosis = options.Diagnose
                        ? CompressionDiagnosis.Run(original.Model, loaded.Model, calibration.Tokens, heldOut, compression.BatchSize, cancellationToken)
                        : null,
                };
                rows.Add(row);
                log?.Invoke($"{variant.Label,-10} CR {ratio:0.00}: PPL {result.Perplexity,12:F4}" + (row.HeldOutPerplexity is { } p ? $"  held-out {p:F4}" : "") +
                    string.Concat(row.Tasks.Select(t => $"  {t.Task} {t.Acc:F3}")) +
                    $"  (achieved {report.Ratio.AchievedLinearRatio:F4} linears / {report.Ratio.AchievedModelRatio:F4} model; compress {compressSeconds:F1} s, eval {result.Seconds:F1} s)");
            }
        }
        return new MethodBenchmarkResult(original.Folder, baseline.Perplexity, baseline.MeanNll, baseline.ScoredTokens, texts.EvaluationSource.Description,
            protocol.Name, options.Window, calibration.Protocol, original.Model.Device.ToString(), MachineDescription(),
            DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture), rows)
        {
            HeldOutSamples = options.HeldOut,
            OriginalHeldOutPerplexity = baselineHeldOut,
            OriginalTasks = baselineTasks,
        };
    }

    /// <summary>exp(mean NLL) over the predicted positions of [samples, L] token windows (each scored on its own).</summary>
    public static double SamplePerplexity(IDecoderModel model, Tensor ids, int batchSize = 8, CancellationToken cancellationToken = default)
    {
        double nll = 0;
        long tokens = 0;
        using var noGrad = no_grad();
        for (long first = 0; first < ids.shape[0]; first += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var batch = ids.narrow(0, first, Math.Min(batchSize, ids.shape[0] - first)).to(model.Device);
            var logits = model.Logits(batch).narrow(1, 0, batch.shape[1] - 1);
            var targets = batch.narrow(1, 1, batch.shape[1] - 1);
            nll += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]).to(float64), targets.reshape(-1), reduction: nn.Reduction.Sum).item<double>();
            tokens += targets.numel();
        }
        return Math.Exp(nll / tokens);
    }

    private static TaskScore[] Score(IDecoderModel model, ITokenizer tokenizer, IReadOnlyList<MultipleChoiceTask> tasks, CancellationToken cancellationToken) =>
        tasks.Select(task => ZeroShotEvaluator.Evaluate(model, tokenizer, task, cancellation: cancellationToken))
            .Select(r => new TaskScore(r.Task, r.Items, r.Acc, r.AccStderr, r.AccNorm)).ToArray();

    internal static string MachineDescription()
    {
        var cpu = "unknown CPU";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }
        catch (IOException)
        {
        }
        return $"{cpu}, {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}";
    }
}
