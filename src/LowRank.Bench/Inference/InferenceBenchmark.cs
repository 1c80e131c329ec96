using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using LowRank.Compression;
using LowRank.Jobs;
using LowRank.Models;
using LowRank.Onnx;
using LowRank.Torch;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Bench.Inference;

/// <summary>The runtimes <see cref="InferenceBenchmark"/> compares.</summary>
public enum InferenceRuntime
{
    /// <summary>The exported ONNX graph under ONNX Runtime (CPU provider; CUDA where the package has it).</summary>
    OnnxRuntime,
    /// <summary>Our TorchSharp forward (<c>DecoderModel</c> with its KV cache).</summary>
    TorchSharp,
}

public sealed record InferenceBenchmarkOptions
{
    /// <summary>A synthetic LLaMA shape with random weights (speed does not depend on the values), or null.</summary>
    public ScaleShape? Shape { get; init; }

    /// <summary>Blocks of <see cref="Shape"/> to build (null: all).</summary>
    public int? Layers { get; init; }

    /// <summary>Model folders measured besides the shape; their compressed variants are SVD at each ratio.</summary>
    public IReadOnlyList<string> Models { get; init; } = [];

    /// <summary>Fractions of the block linears' parameters removed; dense is always measured too.</summary>
    public IReadOnlyList<double> Ratios { get; init; } = [0.2, 0.4, 0.6];

    /// <summary>Round synthetic ranks down to a multiple of this (1 = the exact rank of the ratio).</summary>
    public int RankMultiple { get; init; } = 1;

    public IReadOnlyList<InferenceRuntime> Runtimes { get; init; } = [InferenceRuntime.OnnxRuntime, InferenceRuntime.TorchSharp];

    public int PrefillTokens { get; init; } = 512;

    public IReadOnlyList<int> DecodeBatches { get; init; } = [1, 16];

    /// <summary>Prompt length before the timed decode steps (not timed).</summary>
    public int DecodePrompt { get; init; } = 16;

    public int DecodeSteps { get; init; } = 16;

    public DeviceRequest Device { get; init; } = DeviceRequest.Cpu;

    /// <summary>Weights and activations: fp32 (the CPU) or fp16 (GPUs).</summary>
    public ScalarType Dtype { get; init; } = ScalarType.Float32;

    /// <summary>Threads per runtime (null: one per core).</summary>
    public int? Threads { get; init; }

    /// <summary>Where checkpoints and exports are written (each variant's deleted after it was measured).</summary>
    public required string Work { get; init; }
}

/// <summary>Tokens per second of one decode setting: <see cref="Batch"/> sequences, one new token each per step.</summary>
public sealed record DecodeResult(int Batch, int Steps, double MillisecondsPerStep, double TokensPerSecond)
{
    /// <summary>The rates of <paramref name="steps"/> steps of <paramref name="batch"/> sequences that took <paramref name="seconds"/>.</summary>
    public static DecodeResult Timed(int batch, int steps, double seconds) => new(batch, steps, 1000 * seconds / steps, batch * steps / seconds);
}

/// <summary>One model variant on one runtime.</summary>
public sealed record InferenceResult
{
    public required string Model { get; init; }
    public required string Variant { get; init; }
    public double? RequestedRatio { get; init; }
    /// <summary>Fraction of the block linears' parameters removed (0 for dense).</summary>
    public required double AchievedRatio { get; init; }
    public required string Runtime { get; init; }
    public required string Device { get; init; }
    public required string Dtype { get; init; }
    public required long LinearParameters { get; init; }
    /// <summary>The files the runtime loads: safetensors for TorchSharp, model.onnx (+ .data) for ONNX Runtime.</summary>
    public required long BytesOnDisk { get; init; }
    public required double LoadSeconds { get; init; }
    /// <summary>Host resident memory the loaded model added (VmRSS after load − before).</summary>
    public required long ResidentBytes { get; init; }
    /// <summary>Peak host resident memory while loading and running, above the level before loading (VmHWM − VmRSS before).</summary>
    public required long PeakBytes { get; init; }
    /// <summary>Peak GPU memory in use (CUDA runs: nvidia-smi's view, context included), else null.</summary>
    public double? GpuPeakGiB { get; init; }
    public required int PrefillTokens { get; init; }
    public required double PrefillTokensPerSecond { get; init; }
    public required IReadOnlyList<DecodeResult> Decode { get; init; }
}

public sealed record InferenceBenchmarkReport(string Machine, string CreatedUtc, InferenceBenchmarkOptions Options, IReadOnlyList<InferenceResult> Results);

/// <summary>
/// <c>dotnet lowrank bench inference</c>: what compression buys at inference time. For each model — a synthetic LLaMA
/// shape with random weights (large enough that decoding is bound by reading the weights), and model folders — the
/// dense model and its compressed variants at each ratio are written to disk, then loaded and run by each runtime:
/// bytes on disk, resident and peak memory, prefill tokens/s (batch 1) and decode tokens/s (each batch size, greedy,
/// KV cache). Variants are measured one at a time in this process (peak memory reset before each load) and deleted after.
/// </summary>
public static class InferenceBenchmark
{
    /// <param name="onResult">Called with the report so far after each measurement (a long run keeps what it measured).</param>
    public static InferenceBenchmarkReport Run(InferenceBenchmarkOptions options, Action<string>? log = null,
        Action<InferenceBenchmarkReport>? onResult = null, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(options.Work);
        var device = TorchBackend.Device(options.Device);
        var results = new List<InferenceResult>();
        var created = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        void Add(IEnumerable<InferenceResult> measured)
        {
            results.AddRange(measured);
            onResult?.Invoke(new InferenceBenchmarkReport(Machine(), created, options, results.ToList()));
        }
        if (options.Shape is { } shape)
        {
            var layers = options.Layers ?? shape.Layers;
            var name = $"llama-{shape.Name}-{layers}l";
            foreach (var ratio in new double?[] { null }.Concat(options.Ratios.Select(r => (double?)r)))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var folder = Path.Combine(options.Work, ratio is { } r ? $"{name}-r{r.ToString("0.##", CultureInfo.InvariantCulture)}" : $"{name}-dense");
                log?.Invoke($"{name} {Label(ratio)}: synthesising {folder}");
                var achieved = SyntheticModel.Write(folder, shape, layers, ratio, options.RankMultiple, options.Dtype);
                try
                {
                    Add(MeasureVariant(name, folder, ratio, achieved, device, options, log, cancellationToken));
                }
                finally
                {
                    Directory.Delete(folder, recursive: true);
                }
            }
        }
        foreach (var model in options.Models)
        {
            var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(model)));
            Add(MeasureVariant(name, model, null, 0, device, options, log, cancellationToken));
            foreach (var ratio in options.Ratios)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var folder = Path.Combine(options.Work, $"{name}-svd-{ratio.ToString("0.##", CultureInfo.InvariantCulture)}");
                if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
                var job = CompressionJob.Run(new CompressionJobOptions
                {
                    Model = model,
                    Out = folder,
                    Compression = new CompressionOptions { Method = CompressionMethod.Svd, Ratio = ratio },
                    Device = options.Device,
                    Force = true,
                }, cancellationToken: cancellationToken);
                try
                {
                    Add(MeasureVariant(name, folder, ratio, job.Report.Ratio.AchievedLinearRatio, device, options, log, cancellationToken));
                }
                finally
                {
                    Directory.Delete(folder, recursive: true);
                }
            }
        }
        return new InferenceBenchmarkReport(Machine(), created, options, results);
    }

    private static string Label(double? ratio) => ratio is { } r ? $"ratio {r.ToString("0.##", CultureInfo.InvariantCulture)}" : "dense";

    private static List<InferenceResult> MeasureVariant(string name, string folder, double? ratio, double achieved, Device device,
        InferenceBenchmarkOptions options, Action<string>? log, CancellationToken cancellationToken)
    {
        var results = new List<InferenceResult>();
        foreach (var runtime in options.Runtimes)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var result = runtime == InferenceRuntime.TorchSharp
                ? MeasureTorch(name, folder, ratio, achieved, device, options)
                : MeasureOnnx(name, folder, ratio, achieved, device, options, log);
            if (result is null) continue;
            log?.Invoke($"{name,-22} {Label(ratio),-10} {result.Runtime,-11} disk {LowRank.ByteSize.Format(result.BytesOnDisk),10}  resident {LowRank.ByteSize.Format(result.ResidentBytes),10}  " +
                $"peak {LowRank.ByteSize.Format(result.PeakBytes),10}  prefill {result.PrefillTokensPerSecond,8:F1} tok/s  " +
                string.Join("  ", result.Decode.Select(d => $"decode b{d.Batch} {d.TokensPerSecond,7:F1} tok/s")));
            results.Add(result);
        }
        return results;
    }

    private static InferenceResult MeasureTorch(string name, string folder, double? ratio, double achieved, Device device, InferenceBenchmarkOptions options)
    {
        if (options.Threads is { } threads) torch.set_num_threads(threads);
        Settle();
        var before = Baseline();
        using var gpuMemory = device.type == DeviceType.CUDA ? GpuMemorySampler.Start(device.index < 0 ? 0 : device.index) : null;
        var clock = Stopwatch.StartNew();
        using var loaded = ModelLoader.Load(folder, new ModelLoadOptions { Device = options.Device, ComputeDtype = options.Dtype, LoadTokenizer = false });
        var loadSeconds = clock.Elapsed.TotalSeconds;
        var resident = ProcessMemory.ResidentBytes - before;
        var model = loaded.Model;
        var vocab = loaded.Config.VocabSize;
        using var grad = no_grad();

        double RunTimed(Func<Tensor> forward)
        {
            using var scope = NewDisposeScope();
            Sync();
            var watch = Stopwatch.StartNew();
            var logits = forward();
            logits.argmax(-1).cpu();
            return watch.Elapsed.TotalSeconds;
        }
        void Sync()
        {
            if (device.type == DeviceType.CUDA) cuda.synchronize();
        }

        var prefill = PrefillLength(options, loaded.Config);
        RunTimed(() => model.Logits(Ids(1, Math.Min(32, prefill), vocab, device)));
        var prefillSeconds = RunTimed(() => model.Logits(Ids(1, prefill, vocab, device)));
        var decode = new List<DecodeResult>();
        foreach (var batch in options.DecodeBatches)
        {
            using var cache = model.CreateCache();
            using var scope = NewDisposeScope();
            var next = model.Logits(Ids(batch, options.DecodePrompt, vocab, device), cache).narrow(1, -1, 1).argmax(-1);
            for (var warm = 0; warm < 2; warm++) next = model.Logits(next, cache).argmax(-1);
            Sync();
            var watch = Stopwatch.StartNew();
            for (var step = 0; step < options.DecodeSteps; step++) next = model.Logits(next, cache).argmax(-1);
            next.cpu();
            decode.Add(DecodeResult.Timed(batch, options.DecodeSteps, watch.Elapsed.TotalSeconds));
        }
        var linears = Enumerable.Range(0, model.BlockCount).SelectMany(model.BlockLinears).ToList();
        return Result(name, ratio, achieved, device, "torchsharp", options.Dtype.ToString(), linears.Sum(l => l.ParameterCount),
            FileBytes(folder, "*.safetensors"), new Timings(loadSeconds, resident, before, prefill, prefillSeconds, decode))
            with { GpuPeakGiB = gpuMemory?.PeakGiB(0, gpuMemory.Now) };
    }

    private static InferenceResult? MeasureOnnx(string name, string folder, double? ratio, double achieved, Device device, InferenceBenchmarkOptions options, Action<string>? log)
    {
        var dtype = options.Dtype == ScalarType.Float16 ? OnnxDtype.Float16 : OnnxDtype.Float;
        using var session = new SessionOptions { IntraOpNumThreads = options.Threads ?? Environment.ProcessorCount };
        if (device.type == DeviceType.CUDA)
        {
            try
            {
                session.AppendExecutionProvider_CUDA(device.index < 0 ? 0 : device.index);
            }
            catch (OnnxRuntimeException e)
            {
                log?.Invoke($"{name} {Label(ratio)}: ONNX Runtime's CUDA provider is not available here ({e.Message.Split('\n')[0]}); skipped");
                return null;
            }
        }
        var onnxFolder = folder.TrimEnd('/') + "-onnx";
        var export = OnnxExporter.Export(folder, onnxFolder, new OnnxExportOptions { Dtype = dtype, Overwrite = true });
        try
        {
            var config = ModelConfigReader.Read(onnxFolder);
            var graph = OnnxExporter.CreateGraph(config, new MemoryExportWeights(), dtype);
            Settle();
            var before = Baseline();
            var clock = Stopwatch.StartNew();
            using var decoder = new OrtDecoder(Path.Combine(onnxFolder, OnnxExporter.ModelFileName), config.NumLayers, graph.KvHeads, graph.HeadDim, dtype, session);
            var loadSeconds = clock.Elapsed.TotalSeconds;
            var resident = ProcessMemory.ResidentBytes - before;
            var prefill = PrefillLength(options, config);
            decoder.Reset(1);
            decoder.Step(IdsArray(1, Math.Min(32, prefill), config.VocabSize));
            decoder.Reset(1);
            var watch = Stopwatch.StartNew();
            decoder.Step(IdsArray(1, prefill, config.VocabSize));
            var prefillSeconds = watch.Elapsed.TotalSeconds;
            var decode = new List<DecodeResult>();
            foreach (var batch in options.DecodeBatches)
            {
                decoder.Reset(batch);
                var next = decoder.Step(IdsArray(batch, options.DecodePrompt, config.VocabSize));
                for (var warm = 0; warm < 2; warm++) next = decoder.Step(next);
                watch.Restart();
                for (var step = 0; step < options.DecodeSteps; step++) next = decoder.Step(next);
                decode.Add(DecodeResult.Timed(batch, options.DecodeSteps, watch.Elapsed.TotalSeconds));
            }
            return Result(name, ratio, achieved, device, "onnxruntime", dtype.ShortName(),
                export.Linears.Sum(l => l.Rank is { } k ? k * (l.InFeatures + l.OutFeatures) : l.InFeatures * l.OutFeatures),
                FileBytes(onnxFolder, "model.onnx*"), new Timings(loadSeconds, resident, before, prefill, prefillSeconds, decode));
        }
        finally
        {
            Directory.Delete(onnxFolder, recursive: true);
        }
    }

    /// <summary>What every runtime measures of a loaded variant: load time, resident memory above the baseline taken
    /// before loading (<see cref="Baseline"/>), prefill and decode timings.</summary>
    private sealed record Timings(double LoadSeconds, long ResidentBytes, long BaselineBytes, int PrefillTokens, double PrefillSeconds, IReadOnlyList<DecodeResult> Decode);

    /// <summary>The row of one variant on one runtime; the peak memory is read now (VmHWM − the baseline).</summary>
    private static InferenceResult Result(string name, double? ratio, double achieved, Device device, string runtime, string dtype,
        long linearParameters, long bytesOnDisk, Timings timings) => new()
    {
        Model = name,
        Variant = Label(ratio),
        RequestedRatio = ratio,
        AchievedRatio = achieved,
        Runtime = runtime,
        Device = device.ToString(),
        Dtype = dtype,
        LinearParameters = linearParameters,
        BytesOnDisk = bytesOnDisk,
        LoadSeconds = Math.Round(timings.LoadSeconds, 3),
        ResidentBytes = timings.ResidentBytes,
        PeakBytes = ProcessMemory.PeakResidentBytes - timings.BaselineBytes,
        PrefillTokens = timings.PrefillTokens,
        PrefillTokensPerSecond = timings.PrefillTokens / timings.PrefillSeconds,
        Decode = timings.Decode,
    };

    private static long FileBytes(string folder, string pattern) => Directory.EnumerateFiles(folder, pattern).Sum(f => new FileInfo(f).Length);

    private static int PrefillLength(InferenceBenchmarkOptions options, ModelConfig config) =>
        Math.Min(options.PrefillTokens, config.MaxPositions - options.DecodePrompt - options.DecodeSteps - 2);

    /// <summary>Collects garbage so freed native memory of the previous variant is gone before the next baseline.</summary>
    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static long Baseline()
    {
        ProcessMemory.ResetPeak();
        return ProcessMemory.ResidentBytes;
    }

    /// <summary>Deterministic token ids [batch, n] (the values do not change the speed).</summary>
    private static long[] IdsArray(int batch, int n, int vocab) =>
        Enumerable.Range(0, batch * n).Select(i => (long)((i * 7919L + 13) % vocab)).ToArray();

    private static Tensor Ids(int batch, int n, int vocab, Device device) => tensor(IdsArray(batch, n, vocab), [batch, n]).to(device);

    private static string Machine()
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : null;
        return $"{cpu ?? "unknown CPU"}, {Environment.ProcessorCount} cores, {Environment.OSVersion}";
    }

    /// <summary>The JSON document of <c>--json</c> / <c>--output</c>.</summary>
    public static JsonNode ToJson(InferenceBenchmarkReport report) => JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(report, Json))!;

    private static readonly System.Text.Json.JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };
}
