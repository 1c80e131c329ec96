using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LowRank.Artifacts;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Models;
using LowRank.Torch;
using LowRank.Compression;

namespace LowRank.Jobs;

/// <summary>Load → calibrate → (evaluate) → compress → round factors to their storage dtype → (evaluate) → write the artifact.</summary>
public static class CompressionJob
{
    /// <summary>The full compression report, written into the artifact beside the manifest.</summary>
    public const string ReportFileName = "lowrank-report.json";

    /// <summary>Records embedded in the manifest use its snake_case keys.</summary>
    private static readonly JsonSerializerOptions ManifestJson = new(CompressionJson.JsonOptions) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static CompressionJobResult Run(CompressionJobOptions job, IProgress<ProgressUpdate>? progress = null, CancellationToken cancellationToken = default)
    {
        job.Compression.Validate();
        // Before anything is read: the output resolved through links is not the source (nor holds it), and can be created.
        ArtifactWriter.CheckOutput(job.Out, SourceLocation(job.Model), job.Force);
        if (job.FactorFormat is not null && job.Compression.TargetBits is not null)
            throw new LrkException(ErrorCodes.BadArgument, $"--target-bits chooses each linear's storage; --factor-dtype {job.FactorFormat} cannot be given too");
        if (job.FactorFormat is not null && job.Compression.Method.IsQuantizationOnly())
            throw new LrkException(ErrorCodes.BadArgument, $"{job.Compression.Method.Name()} keeps the weights dense: --factor-dtype {job.FactorFormat} is for the low-rank methods (use --bits)");
        var needsData = Compressor.NeedsCalibration(job.Compression.Method)
            || (job.FactorFormat is not null && job.Compression.FactorQuantizer == Quantization.Quantizer.Gptq);
        if (needsData && !job.Calibration.HasText)
            throw new LrkException(ErrorCodes.BadArgument, $"{job.Compression.Method.Name()}{(job.FactorFormat is null ? "" : $" with GPTQ-quantized {job.FactorFormat} factors")} needs calibration text: pass --calib FILE (only SVD and RTN work without)");
        // RTN reports its objective on calibration data when it is given.
        var usesData = needsData || job.Calibration.HasText && job.Compression.Method != CompressionMethod.Svd;
        if (usesData) CalibrationSampler.Validate(job.Calibration.Samples, job.Calibration.SeqLen);
        var seconds = new Dictionary<string, double>(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        // The manifest records the source's digest: hashing a 13 GB checkpoint takes seconds, so it runs beside the load
        // and the compression instead of before the write (its sidecar makes later runs instant).
        var sourceDigest = Task.Run(() => LowRank.Cache.ModelDigest.Compute(job.Model), cancellationToken);

        // Read the calibration text before loading the model, so a bad --calib fails in a moment, not after the load.
        var calibrationText = usesData
            ? job.Calibration.LoadText()
            : null;
        progress?.Report(new ProgressUpdate("load", $"loading {job.Model}"));
        var streamBlocks = job.StreamBlocks ?? (job.Compression.Method != CompressionMethod.Fwsvd);
        if (streamBlocks && job.Compression.Method == CompressionMethod.Fwsvd)
            throw new LrkException(ErrorCodes.BadArgument, "FWSVD's backward passes need the whole model on the device: drop --stream-blocks");
        var onGpu = TorchBackend.Device(job.Device, job.LibTorch).type != TorchSharp.DeviceType.CPU;
        using var loaded = ModelLoader.Load(job.Model, new ModelLoadOptions
        {
            Device = job.Device,
            LibTorch = job.LibTorch,
            ComputeDtype = job.ComputeDtype,
            // Streaming only acts on a GPU (on the CPU the model is where it runs).
            StreamBlocks = streamBlocks,
            LazyBlockWeights = streamBlocks && onGpu && !FitsInHostMemory(job.Model, job.ComputeDtype),
            LoadTokenizer = usesData || job.Evaluation is not null,
        });
        seconds["load"] = Lap(clock);
        var factorDtype = ArtifactWriter.ResolveFactorDtype(job.FactorDtype, loaded.Config);
        CalibrationSet? calibration = null;
        try
        {
            if (usesData)
            {
                var tokenizer = Tokenizer(loaded, job.Model);
                progress?.Report(new ProgressUpdate("calibrate", $"sampling {job.Calibration.Samples} calibration samples from {job.Calibration.Text}"));
                var source = calibrationText!;
                var stream = TokenProtocol.Parse(job.Calibration.Protocol).Encode(tokenizer, source, cancellationToken);
                calibration = CalibrationSampler.Sample(stream, source, job.Calibration.Sampler(loaded.Config));
                seconds["calibrate"] = Lap(clock);
            }

            (SourceText Source, TokenizedText Tokens)? evalText = null;
            TextPerplexityResult? before = null;
            if (job.Evaluation is { } spec)
            {
                evalText = TextPerplexity.Encode(Tokenizer(loaded, job.Model), spec, cancellationToken);
                before = TextPerplexity.Measure(loaded.Model, evalText.Value.Source, evalText.Value.Tokens, spec, progress, "evaluate before", cancellationToken);
                RequireFinite(before, "of the source model", "nothing was compressed");
                seconds["evaluate_before"] = Lap(clock);
            }

            // A sharded artifact's block shards are written while later blocks are compressed.
            var target = new ArtifactRequest
            {
                Model = loaded.Model,
                SourcePath = loaded.Folder,
                OutputFolder = job.Out,
                Method = job.Compression.Method.Name().ToLowerInvariant(),
                RequestedRatio = job.Compression.Ratio,
                FactorDtype = factorDtype,
                Overwrite = job.Force,
                MaxShardBytes = job.MaxShardBytes,
                SourceDigest = sourceDigest,
                Quantizer = job.Compression.Method switch
                {
                    CompressionMethod.Rtn => Quantization.Quantizer.Rtn,
                    CompressionMethod.Gptq => Quantization.Quantizer.Gptq,
                    _ => job.Compression.FactorQuantizer,
                },
            };
            // Quantized factors are made after the whole model is factorised, so the block shards cannot be written early.
            using var streamed = job.FactorFormat is null && job.Compression.TargetBits is null ? StreamedArtifact.TryBegin(target) : null;
            var report = Compressor.Compress(loaded.Model, calibration?.Tokens, job.Compression, progress, streamed is null ? null : streamed.BlockCompleted, cancellationToken);
            seconds["compress"] = Lap(clock);
            Func<LinearWeight, Quantization.QuantFormat?>? formatOf = job.FactorFormat is { } format
                ? linear => linear.IsFactorized ? format : null
                : report.Allocation is { } allocation
                    ? linear => allocation.Formats.GetValueOrDefault(linear.Name) is { } spelling ? Quantization.QuantFormat.Parse(spelling) : null
                    : null;
            if (formatOf is not null)
            {
                using var source = OriginalWeights.TryOpen(loaded.Folder, loaded.Config);
                report = report with
                {
                    Quantization = Compressor.Quantize(loaded.Model, calibration?.Tokens, job.Compression, formatOf, source is null ? null : source.Load,
                        progress, cancellationToken),
                };
                seconds["quantize"] = Lap(clock);
            }
            // What is measured after compression is exactly what the artifact stores.
            ArtifactWriter.RoundFactorsToStorage(loaded.Model, factorDtype);

            TextPerplexityResult? after = null;
            if (job.Evaluation is { } evalSpec && evalText is { } text)
            {
                after = TextPerplexity.Measure(loaded.Model, text.Source, text.Tokens, evalSpec, progress, "evaluate after", cancellationToken);
                RequireFinite(after, "of the compressed model", "nothing was written");
                seconds["evaluate_after"] = Lap(clock);
            }
            var evaluation = before is not null && after is not null ? new CompressionEvaluation(before, after) : null;

            var request = target with
            {
                ExtraContent = new Dictionary<string, string>
                {
                    [ReportFileName] = JsonSerializer.Serialize(new { report, calibration = calibration?.Protocol, evaluation, computeDtype = job.ComputeDtype.ToString(), streamBlocks }, CompressionJson.JsonOptions) + "\n",
                },
                Provenance = new ArtifactProvenance
                {
                    Seed = job.Calibration.Seed,
                    MethodOptions = JsonSerializer.SerializeToNode(report.Options, ManifestJson) as JsonObject,
                    Calibration = calibration is null ? null : new ManifestCalibration(calibration.Protocol.Source, calibration.Protocol.SourceSha256,
                        JsonSerializer.SerializeToNode(calibration.Protocol, ManifestJson)),
                    Evaluation = evaluation is null ? null : new JsonObject
                    {
                        ["text"] = JsonSerializer.SerializeToNode(evaluation.After.Text, ManifestJson),
                        ["window_length"] = evaluation.After.Perplexity.WindowLength,
                        ["stride"] = evaluation.After.Perplexity.Stride,
                        ["scored_tokens"] = evaluation.After.Perplexity.ScoredTokens,
                    },
                    Metrics = evaluation is null ? null : new JsonObject
                    {
                        ["ppl_before"] = evaluation.Before.Perplexity.Perplexity,
                        ["ppl_after"] = evaluation.After.Perplexity.Perplexity,
                        ["mean_nll_before"] = evaluation.Before.Perplexity.MeanNll,
                        ["mean_nll_after"] = evaluation.After.Perplexity.MeanNll,
                    },
                    TimingsSeconds = seconds,
                },
            };
            var artifact = streamed is not null ? streamed.Complete(request, progress, cancellationToken) : ArtifactWriter.Write(request, progress, cancellationToken);
            return new CompressionJobResult(artifact.Folder, report, calibration?.Protocol, artifact, evaluation, Path.Combine(artifact.Folder, ReportFileName));
        }
        finally
        {
            calibration?.Dispose();
        }
    }

    /// <summary>Whether the model's weights in <paramref name="dtype"/> take at most 40% of the host's available memory.
    /// Larger ones are streamed with lazy weights (read per block from the checkpoint); smaller ones stay in host memory,
    /// since re-reading every block for every evaluation batch would make <c>--eval</c> I/O-bound.</summary>
    private static bool FitsInHostMemory(string model, TorchSharp.torch.ScalarType dtype)
    {
        long available;
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal));
            if (line is null) return true;
            available = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException)
        {
            return true;
        }
        using var store = TensorStore.Open(ModelLocator.Resolve(model));
        var bytes = store.Entries.Sum(e => e.ElementCount) * (dtype == TorchSharp.torch.ScalarType.Float32 ? 4 : 2);
        return bytes <= 0.4 * available;
    }

    /// <summary>A perplexity over windows that came out NaN/Inf is no measurement: the command fails as <c>eval</c> does
    /// (exit code 3), before anything is written.</summary>
    private static void RequireFinite(TextPerplexityResult result, string when, string consequence)
    {
        var ppl = result.Perplexity;
        if (!ppl.Flagged && double.IsFinite(ppl.Perplexity)) return;
        throw new LrkException(ErrorCodes.NonFinitePerplexity,
            $"the perplexity {when} is not finite: {ppl.NonFiniteWindows.Count} of {ppl.Windows} window(s) gave NaN/Inf (the model's outputs overflow); {consequence}")
        {
            ExitCode = ExitCodes.CheckFailed,
        };
    }

    /// <summary>The files a model argument names: itself when it exists (a folder, or a checkpoint file), else the Hugging
    /// Face cache snapshot of a hub id (<see cref="ModelLocator"/>; a missing model fails here, before anything else).</summary>
    public static string SourceLocation(string model) =>
        !string.IsNullOrWhiteSpace(model) && Path.Exists(model) ? model : ModelLocator.Resolve(model);

    private static ITokenizer Tokenizer(LoadedModel loaded, string model) =>
        loaded.Tokenizer ?? throw new LrkException(ErrorCodes.BadTokenizer, $"{model} has no tokenizer to encode text with");

    private static double Lap(Stopwatch clock)
    {
        var elapsed = clock.Elapsed.TotalSeconds;
        clock.Restart();
        return Math.Round(elapsed, 3);
    }
}
