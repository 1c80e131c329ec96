using System.Diagnostics;
using System.Globalization;
using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Models;
using LowRank.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Bench;

/// <summary>
/// The scale benchmark (`bench gpu`): synthesise a LLaMA-shaped fp16 checkpoint with random weights (seeded randn·0.02,
/// norms 1) layer by layer, compress it end to end through the real pipeline (<see cref="ModelLoader"/> with block
/// streaming, <see cref="Compressor"/>, <see cref="CompressedModelWriter"/>) on random calibration token ids, and
/// measure the stages, the GPU memory and the accuracy of sampled factorisations against fp64.
/// </summary>
public static partial class ScaleBenchmark
{
    public static ScaleBenchmarkResult Run(ScaleBenchmarkOptions options, Action<string>? log = null, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        log ??= _ => { };
        var shape = options.Shape;
        var layers = options.Layers ?? shape.Layers;
        if (layers < 1 || layers > shape.Layers)
            throw new LrkException(ErrorCodes.BadArgument, $"--layers must be in [1, {shape.Layers}] for the {shape.Name} shape (got {layers})");
        if (options.Samples < 1 || options.SeqLen < 2 || options.BatchSize < 1)
            throw new LrkException(ErrorCodes.BadArgument, "samples, seq-len ≥ 2 and batch must be positive");
        var device = TorchBackend.Device(options.Device);
        var compression = CompressionOptionsText.Apply(new CompressionOptions
        {
            Method = options.Method,
            Ratio = options.Ratio,
            BatchSize = options.BatchSize,
            Seed = options.Seed,
            // Keep the calibration stream on the GPU (fp16: 256×2048×4096×2 B = 4.3 GB for 7B).
            DeviceHiddenStateBytes = 32L << 30,
        }, options.Set);
        compression.Validate();
        var kernels = "cpu (torch)";
        if (device.type == DeviceType.CUDA)
        {
            // Runs the native kernel's self-test once; Status then says what is in use, or why not.
            CudaNative.Available(device);
            kernels = CudaNative.Status;
        }
        log($"kernels: {kernels}");

        var work = Path.GetFullPath(options.WorkFolder);
        Directory.CreateDirectory(work);
        var modelFolder = Path.Combine(work, $"llama-{shape.Name}-{layers}l-seed{options.Seed}");
        var outFolder = Path.Combine(work, $"out-{shape.Name}-{options.Method.Name()}");
        using var sampler = GpuMemorySampler.Start();

        // ---- synthesis (not part of the end-to-end time) ----
        var synthesisClock = Stopwatch.StartNew();
        var config = ConfigFor(shape, layers, options.SeqLen);
        var specs = Specs(shape, layers, device, options.Seed);
        var checkpointBytes = specs.Sum(SafeTensorsWriter.ByteLengthOf);
        var staged = options.Staging switch
        {
            CheckpointStaging.Staged => true,
            CheckpointStaging.Whole => false,
            _ => checkpointBytes > 0.8 * new DriveInfo(work).AvailableFreeSpace,
        };
        StagedCheckpoint? staging = null;
        if (staged && options.WriteOutput)
            throw new LrkException(ErrorCodes.BadArgument,
                "a staged checkpoint is gone block by block once read, and the artifact writer re-reads the source: run it with --no-write");
        if (staged)
        {
            log($"staging {shape.Name} ({layers} blocks, {checkpointBytes / (double)(1L << 30):F1} GiB) in {modelFolder}: blocks are written when first read");
            staging = StagedCheckpoint.Create(modelFolder + "-staged", specs, config, options.StagedBlocks);
        }
        else if (!File.Exists(Path.Combine(modelFolder, "config.json")))
        {
            log($"synthesising {shape.Name} ({layers} blocks) into {modelFolder}");
            Synthesize(modelFolder, specs, config);
        }
        else log($"reusing {modelFolder}");
        var synthesisSeconds = synthesisClock.Elapsed.TotalSeconds;

        try
        {
            // ---- end to end: load → compress → write ----
            var seconds = new Dictionary<string, double>(StringComparer.Ordinal);
            var start = sampler.Now;
            var total = Stopwatch.StartNew();
            var clock = Stopwatch.StartNew();
            // As `compress` does: the source digest the manifest records is computed beside the compression.
            var sourceDigest = options.WriteOutput && staging is null ? Task.Run(() => LowRank.Cache.ModelDigest.Compute(modelFolder), token) : null;
            // Block streaming with lazy weights: each block is read from the checkpoint when it goes to the GPU (the
            // next one read ahead on a background thread) and dropped when it leaves, so host memory holds about two
            // blocks of originals plus the factors.
            var dtype = device.type == DeviceType.CUDA ? ScalarType.Float16 : ScalarType.Float32;
            using var loaded = staging is null
                ? ModelLoader.Load(modelFolder, new ModelLoadOptions
                {
                    Device = options.Device,
                    ComputeDtype = dtype,
                    StreamBlocks = true,
                    LazyBlockWeights = true,
                    LoadTokenizer = false,
                })
                : LoadStaged(staging, device, dtype);
            seconds["load"] = clock.Elapsed.TotalSeconds;
            var model = loaded.Model;

            // Random calibration ids (no tokenizer needed: the weights are random too); BOS first like real samples.
            using var ids = CalibrationIds(options.Samples, options.SeqLen, shape.Vocab, options.Seed);

            // Block-0 inputs for the accuracy check (Grams kept on the host). A whole checkpoint can be read again, so they
            // are captured after the measured window from a second, lazily loaded copy of the original model: the
            // capture's fp64 Grams would otherwise stay reserved by the caching allocator (TorchSharp has no empty_cache)
            // and inflate the pipeline's peak. A staged checkpoint is gone block by block, so there the capture comes
            // first (the clock pauses) and its samples are left out of the peak.
            var probeStart = sampler.Now;
            var probeEnd = probeStart;
            List<Probe>? probes = null;
            if (staging is not null)
            {
                total.Stop();
                clock.Restart();
                probes = CaptureProbes(model, ids, options, compression);
                probeEnd = sampler.Now;
                seconds["accuracy_capture_excluded"] = clock.Elapsed.TotalSeconds;
                total.Start();
            }

            log($"compressing with {options.Method.Name()} at ratio {options.Ratio} on {device}");
            var request = new LowRank.Artifacts.ArtifactRequest
            {
                Model = model,
                SourcePath = loaded.Folder,
                OutputFolder = outFolder,
                Method = options.Method.Name().ToLowerInvariant(),
                RequestedRatio = options.Ratio,
                FactorDtype = LowRank.Artifacts.ArtifactWriter.ResolveFactorDtype(null, model.Config),
                Overwrite = true,
                SourceDigest = sourceDigest,
            };
            // As `compress` does: block shards are written while later blocks are compressed.
            using var streamed = options.WriteOutput && options.StreamWrite ? LowRank.Artifacts.StreamedArtifact.TryBegin(request) : null;
            var report = Compressor.Compress(model, ids, compression, new Progress<ProgressUpdate>(p => log($"{p.Stage} {p.Message}")),
                streamed is null ? null : streamed.BlockCompleted, token);
            foreach (var (stage, value) in report.Seconds) seconds[stage] = value;

            if (options.WriteOutput)
            {
                clock.Restart();
                if (streamed is not null) streamed.Complete(request, null, token);
                else LowRank.Artifacts.ArtifactWriter.Write(request, null, token);
                seconds["write"] = clock.Elapsed.TotalSeconds;
            }
            var writeMode = !options.WriteOutput ? "none"
                : streamed is not null ? "streamed: block shards written during compress; 'write' is what was left after it"
                : "at the end: 'write' is the whole artifact";
            seconds["end_to_end"] = total.Elapsed.TotalSeconds;
            var end = sampler.Now;

            if (probes is null)
            {
                using var original = ModelLoader.Load(modelFolder, new ModelLoadOptions
                {
                    Device = options.Device,
                    ComputeDtype = dtype,
                    StreamBlocks = true,
                    LazyBlockWeights = true,
                    LoadTokenizer = false,
                });
                probes = CaptureProbes(original.Model, ids, options, compression);
            }
            log("accuracy check against fp64");
            var accuracy = probes.Select(p => Check(p, SvdKernel.Resolve(compression.SvdAlgorithm, device), log)).OfType<FactorisationAccuracy>().ToArray();
            foreach (var probe in probes) probe.Dispose();
            var checksum = options.Checksum ? FactorChecksum(model) : null;

            double? extrapolated = null;
            if (layers < shape.Layers)
            {
                // Load and write scale with the block count; the compressor's per-block stages too.
                extrapolated = seconds["end_to_end"] * shape.Layers / layers;
            }
            var notes = new List<string>
            {
                "weights: random N(0, 0.02²) fp16 (norm weights 1), seeded per tensor; calibration: uniformly random token ids (first = BOS 1), no tokenizer",
                "end_to_end = load + compress (every stage of the method) + write; synthesis and the accuracy check (capture and fp64 comparison) are outside it",
                "with decomposition overlap, 'decomposition' and 'block_leave' are the worker thread's busy time, beside 'statistics' on the main thread; 'decomposition_wait' is how long the main thread waited for it, so the stages add up to more than 'compress'",
                "peak GPU memory: the accuracy check's inputs are captured after the measured window (whole checkpoints, from a second lazily loaded copy of the original model) or before it with its samples left out (staged checkpoints: the caching allocator then keeps what the capture reserved, so the peak is an upper bound)",
                "load: config, embeddings and head; block weights are read lazily, each block when it first goes to the GPU (the next one on a read-ahead thread), so their reading is inside compress",
                "accuracy: relative Frobenius errors of the product A·B; 'vs fp64 svd' = the pipeline's decomposition of (W, H) against fp64 Cholesky + fp64 torch.linalg.svd of the same W and H (H = the Gram the pipeline's precision gives); 'factors vs all fp64' also replaces H by the fp64 Gram of the same fp16 activations; H from the block-0 inputs of the first calibration batch",
            };
            if (layers < shape.Layers)
                notes.Add($"only {layers} of the shape's {shape.Layers} blocks were synthesised and compressed (all at full size); seconds_extrapolated_to_all_blocks scales the measured end-to-end time linearly — an extrapolation, not a measurement");
            if (staging is not null)
                notes.Add($"staged checkpoint: the {checkpointBytes / (double)(1L << 30):F1} GiB checkpoint does not fit the disk; its shards exist as holes and each block is generated and written in place when the loader first reads it ({staging.BlocksStaged} block stagings, {staging.StageSeconds:F1} s, on the read-ahead thread inside the end-to-end window), at most {staging.Capacity} blocks on disk");
            return new ScaleBenchmarkResult
            {
                Shape = shape.Name,
                Config = config,
                BlocksRun = layers,
                BlocksOfShape = shape.Layers,
                Method = options.Method.Name(),
                Ratio = options.Ratio,
                Samples = options.Samples,
                SeqLen = options.SeqLen,
                BatchSize = options.BatchSize,
                Calibration = "random token ids",
                Weights = "random",
                Device = device.ToString(),
                Machine = Environment.MachineName + (device.type == DeviceType.CUDA ? $" ({GpuName()})" : ""),
                DateUtc = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) + " UTC",
                SynthesisSeconds = Math.Round(synthesisSeconds, 2),
                CheckpointGiB = Math.Round(checkpointBytes / (double)(1L << 30), 2),
                Seconds = seconds.ToDictionary(p => p.Key, p => Math.Round(p.Value, 2), StringComparer.Ordinal),
                SecondsExtrapolatedToAllBlocks = extrapolated is { } x ? Math.Round(x, 1) : null,
                // The accuracy capture's own memory (a batch and fp64 Grams of it) is outside the pipeline's window.
                PeakGpuGiB = Max(sampler.PeakGiB(start, probeStart), sampler.PeakGiB(probeEnd, end)) is { } peak ? Math.Round(peak, 2) : null,
                GpuBaselineGiB = sampler.BaselineGiB(start) is { } baseline ? Math.Round(baseline, 2) : null,
                PeakGpuMethod = sampler.Method,
                Ratios = report.Ratio,
                Accuracy = accuracy,
                Kernels = kernels,
                DecompositionOverlap = report.DecompositionOverlap,
                OriginalPass = report.OriginalPass,
                Write = writeMode,
                Checkpoint = staging is null ? "whole" : $"staged ({staging.Capacity} blocks at most on disk)",
                StagingSeconds = staging is null ? null : Math.Round(staging.StageSeconds, 2),
                StagedPeakGiB = staging is null ? null : Math.Round(staging.PeakStagedBytes / (double)(1L << 30), 2),
                FactorSha256 = checksum,
                Notes = notes,
            };
        }
        finally
        {
            staging?.Dispose();
            if (staging is not null && Directory.Exists(staging.Folder)) Directory.Delete(staging.Folder, recursive: true);
        }
    }

    private static double? Max(double? a, double? b) => a is null ? b : b is null ? a : Math.Max(a.Value, b.Value);

    private static LoadedModel LoadStaged(StagedCheckpoint staging, Device device, ScalarType dtype)
    {
        var config = ModelConfigReader.Read(staging.Folder);
        var model = ModelLoader.Create(config, staging.Source(), new DecoderModelOptions
        {
            Device = device,
            ComputeDtype = dtype,
            StreamBlocks = true,
            LazyBlockWeights = true,
        });
        return new LoadedModel(model, null, staging.Folder, config);
    }

    private static string FactorChecksum(IDecoderModel model)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        for (var block = 0; block < model.BlockCount; block++)
        {
            foreach (var linear in model.BlockLinears(block).Where(l => l.IsFactorized))
            {
                sha.AppendData(System.Text.Encoding.UTF8.GetBytes(linear.Name));
                foreach (var factor in new[] { linear.A!, linear.B! })
                {
                    using var host = factor.cpu().contiguous();
                    sha.AppendData(host.bytes);
                }
            }
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    private static string GpuName()
    {
        try
        {
            var info = new ProcessStartInfo("nvidia-smi") { RedirectStandardOutput = true, UseShellExecute = false };
            info.ArgumentList.Add("--query-gpu=name,driver_version");
            info.ArgumentList.Add("--format=csv,noheader");
            using var process = Process.Start(info);
            var text = process?.StandardOutput.ReadToEnd().Trim() ?? "";
            process?.WaitForExit();
            return text.Split('\n')[0];
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "GPU";
        }
    }
}
