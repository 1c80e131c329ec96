using System.Diagnostics;
using System.Globalization;
using System.Text;
using LowRank.Compression;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Models;
using LowRank.Torch;

namespace LowRank.Bench;

/// <summary>What <c>dotnet lowrank bench methods</c> measures: every method × ratio on one model, one calibration set,
/// one evaluation text.</summary>
public sealed record MethodBenchmarkOptions
{
    public required string Model { get; init; }
    public required IReadOnlyList<CompressionMethod> Methods { get; init; }
    public required IReadOnlyList<double> Ratios { get; init; }
    public required string Calibration { get; init; }
    public long? CalibrationByteStart { get; init; }
    public long? CalibrationByteEnd { get; init; }
    public required string Evaluation { get; init; }
    public long? EvaluationByteStart { get; init; }
    public long? EvaluationByteEnd { get; init; }
    public string Protocol { get; init; } = TokenProtocol.StreamName;
    public int Window { get; init; } = 512;
    public int Samples { get; init; } = 256;
    public int? SeqLen { get; init; }
    public int Seed { get; init; } = 42;
    public DeviceRequest Device { get; init; } = DeviceRequest.Auto;
    /// <summary>Option overrides applied to every run (<see cref="CompressionOptionsText"/>), e.g. BatchSize=16.</summary>
    public IReadOnlyList<string> Set { get; init; } = [];
}

public sealed record MethodBenchmarkRow(
    string Method, double RequestedRatio, double AchievedLinearRatio, double AchievedModelRatio,
    double Perplexity, double MeanNll, int NonFiniteWindows, double CompressSeconds, double EvaluateSeconds, CompressionReport Report);

public sealed record MethodBenchmarkResult(
    string Model, double OriginalPerplexity, double OriginalMeanNll, long ScoredTokens, string Evaluation, string Protocol, int Window,
    CalibrationProtocol Calibration, string Device, string Machine, string DateUtc, IReadOnlyList<MethodBenchmarkRow> Rows)
{
    /// <summary>PPL table: one row per method, one column per ratio, plus the original.</summary>
    public string Markdown()
    {
        var ratios = Rows.Select(r => r.RequestedRatio).Distinct().Order().ToArray();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"| method | {string.Join(" | ", ratios.Select(r => $"CR {r:0.##}"))} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"|---|{string.Concat(ratios.Select(_ => "---:|"))}");
        text.AppendLine(CultureInfo.InvariantCulture, $"| original | {string.Join(" | ", ratios.Select(_ => OriginalPerplexity.ToString("F4", CultureInfo.InvariantCulture)))} |");
        foreach (var method in Rows.Select(r => r.Method).Distinct())
        {
            var cells = ratios.Select(ratio => Rows.FirstOrDefault(r => r.Method == method && r.RequestedRatio == ratio) is { } row
                ? Format(row.Perplexity) + (row.NonFiniteWindows > 0 ? $" ({row.NonFiniteWindows} non-finite windows)" : "")
                : "–");
            text.AppendLine(CultureInfo.InvariantCulture, $"| {method} | {string.Join(" | ", cells)} |");
        }
        return text.ToString();
    }

    private static string Format(double ppl) => ppl switch
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
        var tokenizer = original.Tokenizer ?? throw new LrkException(ErrorCodes.BadTokenizer, $"{options.Model} has no tokenizer");
        var protocol = TokenProtocol.Parse(options.Protocol);
        var evalSource = TextSources.Load(options.Evaluation, new TextSourceOptions { ByteStart = options.EvaluationByteStart, ByteEnd = options.EvaluationByteEnd });
        var evalTokens = protocol.Encode(tokenizer, evalSource, cancellationToken).Tokens;
        var calibSource = TextSources.Load(options.Calibration, new TextSourceOptions { ByteStart = options.CalibrationByteStart, ByteEnd = options.CalibrationByteEnd });
        using var calibration = CalibrationSampler.Sample(protocol.Encode(tokenizer, calibSource, cancellationToken), calibSource, new CalibrationOptions
        {
            Samples = options.Samples,
            SeqLen = options.SeqLen ?? CalibrationSampler.DefaultSeqLen(original.Config),
            Seed = options.Seed,
        });
        var perplexity = new PerplexityOptions { WindowLength = options.Window };
        var baseline = PerplexityEvaluator.Evaluate(original.Model, evalTokens, perplexity, cancellation: cancellationToken);
        log?.Invoke($"original: PPL {baseline.Perplexity:F4} over {baseline.ScoredTokens:N0} tokens ({baseline.Seconds:F1} s)");

        var rows = new List<MethodBenchmarkRow>();
        foreach (var method in options.Methods)
        {
            foreach (var ratio in options.Ratios)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var loaded = ModelLoader.Load(options.Model, new ModelLoadOptions { Device = options.Device, LoadTokenizer = false });
                var compression = CompressionOptionsText.Apply(new CompressionOptions { Method = method, Ratio = ratio, Seed = options.Seed }, options.Set);
                var clock = Stopwatch.StartNew();
                var report = Compressor.Compress(loaded.Model, calibration.Tokens, compression, cancellationToken: cancellationToken);
                var compressSeconds = clock.Elapsed.TotalSeconds;
                var result = PerplexityEvaluator.Evaluate(loaded.Model, evalTokens, perplexity, cancellation: cancellationToken);
                rows.Add(new MethodBenchmarkRow(method.Name(), ratio, report.Ratio.AchievedLinearRatio, report.Ratio.AchievedModelRatio,
                    result.Perplexity, result.MeanNll, result.NonFiniteWindows.Count, compressSeconds, result.Seconds, report));
                log?.Invoke($"{method.Name(),-10} CR {ratio:0.00}: PPL {result.Perplexity,12:F4}  (achieved {report.Ratio.AchievedLinearRatio:F4} linears / " +
                    $"{report.Ratio.AchievedModelRatio:F4} model; compress {compressSeconds:F1} s, eval {result.Seconds:F1} s)");
            }
        }
        return new MethodBenchmarkResult(original.Folder, baseline.Perplexity, baseline.MeanNll, baseline.ScoredTokens, evalSource.Description,
            protocol.Name, options.Window, calibration.Protocol, original.Model.Device.ToString(), MachineDescription(),
            DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture), rows);
    }

    private static string MachineDescription()
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
