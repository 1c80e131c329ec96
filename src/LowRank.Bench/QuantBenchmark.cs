using System.Diagnostics;
using System.Globalization;
using System.Text;
using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Models;
using LowRank.Quantization;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Bench;

/// <summary>What <c>dotnet lowrank bench quant</c> measures on one model: perplexity against the bytes of the block
/// linears for dense fp16, the rtn/gptq baselines, the low-rank methods with fp16/int8/int4 factors, and
/// <c>--target-bits</c>.</summary>
public sealed record QuantBenchmarkOptions : BenchmarkSetup
{
    /// <summary><c>bench quant</c>'s calibration samples N: 128 (half the papers' 256: this benchmark runs many configurations).</summary>
    public const int DefaultSamples = 128;

    public IReadOnlyList<CompressionMethod> Methods { get; init; } = [CompressionMethod.SvdLlm, CompressionMethod.AdaSvd, CompressionMethod.LcSvd];
    public IReadOnlyList<double> Ratios { get; init; } = [0.2, 0.4, 0.6];
    /// <summary>fp16, int8 and int4 factors.</summary>
    public static IReadOnlyList<FactorStorage> DefaultFactorDtypes { get; } =
        new[] { "fp16", "int8", "int4" }.Select(name => FactorStorage.Parse(name, nameof(FactorDtypes), ErrorCodes.BadArgument)).ToArray();

    /// <summary>Factor storages: a float dtype, or a quantized format (<see cref="CompressionOptions.FactorFormat"/>).</summary>
    public IReadOnlyList<FactorStorage> FactorDtypes { get; init; } = DefaultFactorDtypes;
    /// <summary>Bit widths of the rtn and gptq baselines.</summary>
    public IReadOnlyList<int> Bits { get; init; } = [8, 4, 3];
    public IReadOnlyList<double> TargetBits { get; init; } = [3, 4];
    /// <summary>Also run <c>--target-bits</c> at the bits per weight GPTQ 3-bit measured (the same bytes as that baseline).</summary>
    public bool MatchGptq3 { get; init; } = true;
}

/// <summary>One measured configuration. <see cref="Bytes"/>: the block linears' weights as stored (float factors and
/// dense weights in fp16; quantized ones with their scales and zero points).</summary>
public sealed record QuantBenchmarkPoint(
    string Series, string Method, double? Ratio, string Storage, double? TargetBits, long Bytes, double BitsPerWeight,
    double Perplexity, double MeanNll, int NonFiniteWindows, double CompressSeconds, double EvaluateSeconds, int RtnFallbacks);

public sealed record QuantBenchmarkResult(
    string Model, string Evaluation, string Protocol, int Window, long ScoredTokens, CalibrationProtocol Calibration,
    long LinearWeights, string Device, string Machine, string DateUtc, IReadOnlyList<QuantBenchmarkPoint> Points)
{
    private static string F(double value, string format = "F4") => value.ToString(format, CultureInfo.InvariantCulture);

    private QuantBenchmarkPoint? Dense => Points.FirstOrDefault(p => p.Series == QuantBenchmark.DenseSeries);

    /// <summary>Every point, smallest first within a series; then the size-for-quality goals (int8 factors within 1%, int4 within 5% at CR 0.2, the hybrid against GPTQ 3-bit) as measured.</summary>
    public string Markdown()
    {
        var text = new StringBuilder();
        var dense = Dense?.Perplexity;
        text.AppendLine("| series | setting | bits/weight | linear bytes | PPL | vs dense fp16 |");
        text.AppendLine("|---|---|---:|---:|---:|---:|");
        foreach (var point in Points)
        {
            var setting = point.TargetBits is { } t ? $"target {t:G} bits" : point.Ratio is { } r && r > 0 ? $"CR {r:0.0#}" : point.Storage;
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {point.Series} | {setting} | {F(point.BitsPerWeight, "F3")} | {point.Bytes:N0} | {Perplexity(point.Perplexity)} | {(dense is { } d ? $"{(point.Perplexity / d - 1) * 100:+0.0;-0.0}%" : "–")} |");
        }
        text.AppendLine();
        foreach (var line in Goals()) text.AppendLine(line);
        return text.ToString();
    }

    /// <summary>The three goals, each as "met"/"missed" with the numbers behind it.</summary>
    public IReadOnlyList<string> Goals()
    {
        var lines = new List<string>();
        foreach (var method in Points.Where(p => p.Ratio > 0).Select(p => p.Method).Distinct())
        {
            foreach (var ratio in Points.Where(p => p.Method == method && p.Ratio > 0).Select(p => p.Ratio!.Value).Distinct().Order())
            {
                var fp16 = Find(method, ratio, "fp16");
                if (fp16 is null) continue;
                foreach (var quantized in Points.Where(p => p.Method == method && p.Ratio == ratio && p.Storage.StartsWith("int", StringComparison.Ordinal)))
                {
                    var cost = quantized.Perplexity / fp16.Perplexity - 1;
                    var goal = quantized.Storage.StartsWith("int8", StringComparison.Ordinal) ? 0.01 : ratio <= 0.2 + 1e-9 && quantized.Storage.StartsWith("int4", StringComparison.Ordinal) ? 0.05 : (double?)null;
                    lines.Add($"- {method} CR {ratio:0.0#}: {quantized.Storage} factors cost {cost * 100:+0.00;-0.00}% perplexity over fp16 factors ({Perplexity(quantized.Perplexity)} vs {Perplexity(fp16.Perplexity)})" +
                        (goal is { } g ? $"; goal ≤ {g * 100:0}%: {(cost <= g ? "met" : "missed")}" : ""));
                }
            }
        }
        var gptq3 = Points.FirstOrDefault(p => p.Series == "GPTQ" && p.Storage.StartsWith("int3", StringComparison.Ordinal));
        if (gptq3 is not null)
        {
            var hybrids = Points.Where(p => (p.Ratio > 0 || p.TargetBits is not null) && p.BitsPerWeight <= gptq3.BitsPerWeight + 1e-9).ToList();
            var best = hybrids.MinBy(p => p.Perplexity);
            lines.Add(best is null
                ? $"- 3 bits: no hybrid point at or below GPTQ-3's {F(gptq3.BitsPerWeight, "F3")} bits per weight"
                : $"- 3 bits: best hybrid at ≤ {F(gptq3.BitsPerWeight, "F3")} bits/weight (GPTQ 3-bit's size) is {best.Series} {(best.TargetBits is { } t ? $"target {t:G}" : $"CR {best.Ratio:0.0#}")} " +
                  $"({F(best.BitsPerWeight, "F3")} bits/weight) at PPL {Perplexity(best.Perplexity)} vs GPTQ 3-bit {Perplexity(gptq3.Perplexity)}: {(best.Perplexity < gptq3.Perplexity ? "beats it" : "does not beat it")}");
        }
        return lines;
    }

    private QuantBenchmarkPoint? Find(string method, double ratio, string storage) =>
        Points.FirstOrDefault(p => p.Method == method && p.Ratio == ratio && p.Storage == storage);

    internal static string Perplexity(double ppl) => ppl switch
    {
        < 100 => ppl.ToString("F4", CultureInfo.InvariantCulture),
        < 10_000 => ppl.ToString("F2", CultureInfo.InvariantCulture),
        _ => ppl.ToString("0.###E+0", CultureInfo.InvariantCulture),
    };
}

/// <summary>
/// Size against quality on one model: perplexity against bits per weight for each method and storage. The calibration samples and the evaluation stream are made
/// once. Each low-rank method × ratio is compressed once in fp32; its factors are then stored each way in turn (rounded
/// to fp16, or quantized by the quantization pass from the same fp32 factors) and evaluated. The baselines and the
/// <c>--target-bits</c> runs load the model fresh. Everything is measured in memory, which is what the artifact holds
/// (the tests check artifact, dense export and in-memory perplexities agree).
/// </summary>
public static class QuantBenchmark
{
    public const string DenseSeries = "dense fp16";

    public static QuantBenchmarkResult Run(QuantBenchmarkOptions options, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        using var original = ModelLoader.Load(options.Model, new ModelLoadOptions { Device = options.Device });
        var texts = options.LoadTexts(original, cancellationToken);
        var (protocol, evalTokens) = (texts.Protocol, texts.EvaluationTokens);
        using var calibration = texts.SampleCalibration();
        var perplexity = new PerplexityOptions { WindowLength = Math.Min(options.Window, original.Config.MaxPositions) };
        var points = new List<QuantBenchmarkPoint>();
        var weights = Linears(original.Model).Sum(l => l.OutFeatures * l.InFeatures);
        using var source = OriginalWeights.TryOpen(original.Folder, original.Config);
        long scored = 0;

        void Measure(string series, string method, double? ratio, string storage, double? targetBits, IDecoderModel model, double compressSeconds, int fallbacks)
        {
            var result = PerplexityEvaluator.Evaluate(model, evalTokens, perplexity, cancellation: cancellationToken);
            scored = result.ScoredTokens;
            var bytes = StoredBytes(model);
            var point = new QuantBenchmarkPoint(series, method, ratio, storage, targetBits, bytes, 8.0 * bytes / weights,
                result.Perplexity, result.MeanNll, result.NonFiniteWindows.Count, compressSeconds, result.Seconds, fallbacks);
            points.Add(point);
            log?.Invoke($"{series,-22} {(targetBits is { } t ? $"target {t:G}" : ratio > 0 ? $"CR {ratio:0.00}" : storage),-14} {point.BitsPerWeight,7:F3} bits/weight " +
                $"{bytes,12:N0} B  PPL {QuantBenchmarkResult.Perplexity(point.Perplexity),10}  (compress {compressSeconds:F1} s, eval {result.Seconds:F1} s)");
        }

        CompressionOptions Options(CompressionMethod method, double ratio, int? bits = null, double? targetBits = null) =>
            CompressionOptionsText.Apply(new CompressionOptions { Method = method, Ratio = ratio, Bits = bits, TargetBits = targetBits, Seed = options.Calibration.Seed }, options.Set);

        // Dense fp16: the block linears rounded to fp16 (what a fp16 checkpoint holds).
        using (var dense = Fresh(options))
        {
            foreach (var linear in Linears(dense.Model))
                linear.SetDense(linear.Weight!.to(ScalarType.Float16).to(linear.Weight!.dtype));
            Measure(DenseSeries, "dense", null, "fp16", null, dense.Model, 0, 0);
        }

        foreach (var method in new[] { CompressionMethod.Rtn, CompressionMethod.Gptq })
        {
            foreach (var bits in options.Bits)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var loaded = Fresh(options);
                var clock = Stopwatch.StartNew();
                var report = Compressor.Compress(loaded.Model, calibration.Tokens, Options(method, 0, bits), cancellationToken: cancellationToken);
                Measure(method.Name(), method.Name(), null, report.Quantization!.Format, null, loaded.Model, clock.Elapsed.TotalSeconds, report.Quantization.RtnFallbacks);
            }
        }

        foreach (var method in options.Methods)
        {
            foreach (var ratio in options.Ratios)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var loaded = Fresh(options);
                var compression = Options(method, ratio);
                var clock = Stopwatch.StartNew();
                Compressor.Compress(loaded.Model, calibration.Tokens, compression, cancellationToken: cancellationToken);
                var compressSeconds = clock.Elapsed.TotalSeconds;
                using var snapshot = FactorSnapshot.Take(loaded.Model);
                foreach (var storage in options.FactorDtypes)
                {
                    snapshot.Restore();
                    if (storage.FloatDtype() is { } dtype)
                    {
                        ArtifactWriter.RoundFactorsToStorage(loaded.Model, dtype);
                        Measure($"{method.Name()} {dtype.ShortName()}", method.Name(), ratio, dtype.ShortName(), null, loaded.Model, compressSeconds, 0);
                        continue;
                    }
                    var format = compression.FactorFormat(storage);
                    clock.Restart();
                    var quantization = Compressor.QuantizeFactors(loaded.Model, calibration.Tokens, compression, format, source is null ? null : source.Load,
                        cancellationToken: cancellationToken);
                    Measure($"{method.Name()} {storage}", method.Name(), ratio, format.ToString(), null, loaded.Model,
                        compressSeconds + clock.Elapsed.TotalSeconds, quantization.RtnFallbacks);
                }
            }
        }

        // The size GPTQ 3-bit really takes (scales and zero points included) is a budget too: the fair comparison of a
        // hybrid with the 3-bit baseline is at the same bytes.
        var targets = options.TargetBits.ToList();
        if (options.MatchGptq3 && points.FirstOrDefault(p => p.Series == "GPTQ" && p.Storage.StartsWith("int3", StringComparison.Ordinal)) is { } gptq3
            && !targets.Any(t => Math.Abs(t - gptq3.BitsPerWeight) < 1e-3))
            targets.Add(Math.Floor(gptq3.BitsPerWeight * 1e4) / 1e4);
        foreach (var target in targets)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var loaded = Fresh(options);
            var compression = Options(CompressionMethod.SvdLlm, 0, targetBits: target);
            var clock = Stopwatch.StartNew();
            var report = Compressor.Compress(loaded.Model, calibration.Tokens, compression, cancellationToken: cancellationToken);
            var formats = report.Allocation!.Formats;
            var quantization = Compressor.Quantize(loaded.Model, calibration.Tokens, compression,
                linear => formats.GetValueOrDefault(linear.Name) is { } spelling ? QuantFormat.Parse(spelling) : null,
                source is null ? null : source.Load, cancellationToken: cancellationToken);
            Measure("target-bits (SVD-LLM)", CompressionMethod.SvdLlm.Name(), null, "mixed", target, loaded.Model, clock.Elapsed.TotalSeconds, quantization.RtnFallbacks);
        }

        return new QuantBenchmarkResult(original.Folder, texts.EvaluationSource.Description, protocol.Name, perplexity.WindowLength,
            scored, calibration.Protocol, weights, original.Model.Device.ToString(), MethodBenchmark.MachineDescription(),
            DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture), points);
    }

    private static LoadedModel Fresh(QuantBenchmarkOptions options) =>
        ModelLoader.Load(options.Model, new ModelLoadOptions { Device = options.Device, LoadTokenizer = false });

    private static IEnumerable<LinearWeight> Linears(IDecoderModel model) =>
        Enumerable.Range(0, model.BlockCount).SelectMany(model.BlockLinears);

    /// <summary>Bytes of the block linears' weights as an artifact stores them: quantized matrices with scales and zero
    /// points, float factors and dense weights in fp16.</summary>
    public static long StoredBytes(IDecoderModel model) => Linears(model).Sum(linear =>
        linear.QuantizedWeight is { } w ? w.Bytes
        : linear.QuantizedA is { } a ? a.Bytes + linear.QuantizedB!.Bytes
        : 2 * linear.ParameterCount);

    /// <summary>The float factors of a compressed model, to store them several ways in turn.</summary>
    private sealed class FactorSnapshot : IDisposable
    {
        private readonly List<(LinearWeight Linear, Tensor A, Tensor B)> factors = [];

        public static FactorSnapshot Take(IDecoderModel model)
        {
            var snapshot = new FactorSnapshot();
            foreach (var linear in Linears(model).Where(l => l.IsFactorized && !l.IsQuantized))
                snapshot.factors.Add((linear, linear.A!.clone().DetachFromDisposeScope(), linear.B!.clone().DetachFromDisposeScope()));
            return snapshot;
        }

        public void Restore()
        {
            foreach (var (linear, a, b) in factors) linear.Factorize(a.clone(), b.clone());
        }

        public void Dispose()
        {
            foreach (var (_, a, b) in factors)
            {
                a.Dispose();
                b.Dispose();
            }
        }
    }
}
