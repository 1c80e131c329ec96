// Over 400 lines on purpose: the benchmark driver reads in the order it runs (synthesise the model, stage the
// checkpoint, compress, time, sample the accuracy, report); its records are in the files next to it.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
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
public static class ScaleBenchmark
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

    /// <summary>HF LlamaConfig fields for the shape (transformers can load the folder too).</summary>
    public static JsonObject ConfigFor(ScaleShape shape, int layers, int seqLen) => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_size"] = shape.Hidden,
        ["intermediate_size"] = shape.Ffn,
        ["num_hidden_layers"] = layers,
        ["num_attention_heads"] = shape.Heads,
        ["num_key_value_heads"] = shape.KvHeads,
        ["vocab_size"] = shape.Vocab,
        ["max_position_embeddings"] = Math.Max(4096, seqLen),
        ["rms_norm_eps"] = 1e-5,
        ["rope_theta"] = 10000.0,
        ["hidden_act"] = "silu",
        ["tie_word_embeddings"] = false,
        ["bos_token_id"] = 1,
        ["eos_token_id"] = 2,
        ["torch_dtype"] = "float16",
    };

    /// <summary>The checkpoint's tensors in file order, each generated when written (on <paramref name="device"/>):
    /// seeded N(0, 0.02²) fp16 for embeddings and linears, ones for the norms.</summary>
    public static IReadOnlyList<TensorSpec> Specs(ScaleShape shape, int layers, Device device, int seed)
    {
        var d = (long)shape.Hidden;
        var kv = d / shape.Heads * shape.KvHeads;
        var specs = new List<TensorSpec> { Random("model.embed_tokens.weight", [shape.Vocab, d]) };
        for (var i = 0; i < layers; i++)
        {
            var p = $"model.layers.{i}.";
            specs.Add(Ones(p + "input_layernorm.weight", d));
            specs.Add(Random(p + "self_attn.q_proj.weight", [d, d]));
            specs.Add(Random(p + "self_attn.k_proj.weight", [kv, d]));
            specs.Add(Random(p + "self_attn.v_proj.weight", [kv, d]));
            specs.Add(Random(p + "self_attn.o_proj.weight", [d, d]));
            specs.Add(Ones(p + "post_attention_layernorm.weight", d));
            specs.Add(Random(p + "mlp.gate_proj.weight", [shape.Ffn, d]));
            specs.Add(Random(p + "mlp.up_proj.weight", [shape.Ffn, d]));
            specs.Add(Random(p + "mlp.down_proj.weight", [d, shape.Ffn]));
        }
        specs.Add(Ones("model.norm.weight", d));
        specs.Add(Random("lm_head.weight", [shape.Vocab, d]));
        return specs;

        TensorSpec Random(string name, long[] size) => new(name, ScalarType.Float16, size, () =>
        {
            if (device.type == DeviceType.CUDA)
            {
                // TorchSharp's Generator(seed, device) makes a CPU generator, which CUDA randn rejects: seed the
                // device's default generator per tensor instead (same determinism; nothing else draws from it here).
                lock (CudaSeedGate)
                {
                    cuda.manual_seed(SeedOf(name, seed));
                    return (randn(size, ScalarType.Float32, device) * 0.02).to(ScalarType.Float16);
                }
            }
            using var generator = new Generator((ulong)SeedOf(name, seed), device);
            return (randn(size, ScalarType.Float32, device, generator: generator) * 0.02).to(ScalarType.Float16);
        });
        TensorSpec Ones(string name, long size) => new(name, ScalarType.Float16, [size], () => ones(size, ScalarType.Float16, device));
    }

    private static readonly object CudaSeedGate = new();

    /// <summary>Writes config.json and fp16 safetensors shards, one tensor generated at a time.</summary>
    public static void Synthesize(string folder, IReadOnlyList<TensorSpec> specs, JsonObject config)
    {
        var temp = folder + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        File.WriteAllText(Path.Combine(temp, "config.json"), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        SafeTensorsWriter.WriteModel(temp, specs);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        Directory.Move(temp, folder);
    }

    private static long SeedOf(string name, int seed)
    {
        // FNV-1a: a stable per-tensor seed (string.GetHashCode is randomised per process).
        var hash = 14695981039346656037UL ^ (ulong)seed;
        foreach (var c in name)
        {
            hash ^= c;
            hash *= 1099511628211UL;
        }
        return (long)(hash & 0x7fffffffffffffffUL);
    }

    public static Tensor CalibrationIds(int samples, int seqLen, int vocab, int seed)
    {
        using var generator = new Generator((ulong)seed, CPU);
        var ids = randint(3, vocab, [samples, seqLen], dtype: ScalarType.Int64, generator: generator);
        ids[.., 0] = tensor(1L);
        return ids;
    }

    /// <summary>One sampled linear: its dense weight, the Grams of its block-0 input in each precision (fp64, host), its rank.</summary>
    private sealed record Probe(string Name, Tensor Weight, Tensor Gram64, Tensor GramPipeline, string PipelinePath, Tensor GramFp32, Tensor GramTf32, long Rank, Device Device) : IDisposable
    {
        public void Dispose()
        {
            Weight.Dispose();
            Gram64.Dispose();
            GramPipeline.Dispose();
            GramFp32.Dispose();
            GramTf32.Dispose();
        }
    }

    private static List<Probe> CaptureProbes(IDecoderModel model, Tensor ids, ScaleBenchmarkOptions options, CompressionOptions compression)
    {
        var probes = new List<Probe>();
        var wanted = model.BlockLinears(0).Where(l => options.AccuracyKinds.Contains(l.Kind)).ToDictionary(l => l.Name, StringComparer.Ordinal);
        if (wanted.Count == 0) return probes;
        var plan = RankPlan.Uniform(model.BlockLinears(0).Select(l => LinearShape.Of(l, 0)).ToArray(), compression.Ratio, compression.RankMultiple);
        using var scope = NewDisposeScope();
        using var held = model.HoldOnDevice(0);
        // One calibration batch by default: the pipeline's per-batch Gram products accumulate over that many tokens, which
        // is what their precision depends on; at least enough tokens for every sampled Gram to be positive definite.
        var widest = wanted.Values.Max(l => l.InFeatures);
        long samples = options.AccuracySamples > 0 ? options.AccuracySamples : compression.BatchSize;
        samples = Math.Min(Math.Max(samples, (widest * 5 / 4 + ids.shape[1] - 1) / ids.shape[1]), ids.shape[0]);
        var hidden = model.Embed(ids.narrow(0, 0, samples).to(model.Device));
        model.RunBlock(0, hidden, (linear, input) =>
        {
            if (!wanted.TryGetValue(linear.Name, out var l)) return;
            using var inner = NewDisposeScope();
            var x = input.reshape(-1, input.shape[^1]);
            var path = LinearStatistics.Resolve(compression.GramPrecision, x.dtype, x.device);
            var pipeline = LinearStatistics.Product(x, x, compression.GramPrecision).to(ScalarType.Float64);
            var fp32 = LinearStatistics.Product(x, x, GramPrecision.Fp32).to(ScalarType.Float64);
            var tf32 = LinearStatistics.Product(x, x, GramPrecision.Tf32).to(ScalarType.Float64);
            // fp64 products of the same (exactly representable) activations, a slice of tokens at a time.
            var gram64 = zeros([x.shape[1], x.shape[1]], ScalarType.Float64, x.device);
            for (long start = 0; start < x.shape[0]; start += 4096)
            {
                using var part = x.narrow(0, start, Math.Min(4096, x.shape[0] - start)).to(ScalarType.Float64);
                gram64.add_(matmul(part.T, part));
            }
            probes.Add(new Probe(l.Name, l.Weight!.to(ScalarType.Float64, CPU).DetachFromDisposeScope(),
                gram64.to(CPU).DetachFromDisposeScope(), pipeline.to(CPU).DetachFromDisposeScope(), path.ToString(),
                fp32.to(CPU).DetachFromDisposeScope(), tf32.to(CPU).DetachFromDisposeScope(), plan[l.Name].Rank, model.Device));
        });
        return probes;
    }

    private static FactorisationAccuracy? Check(Probe probe, SvdAlgorithm algorithm, Action<string> log)
    {
        try
        {
            return Compare(probe, algorithm);
        }
        catch (ExternalException e)
        {
            // The check runs after the measured run; a failure (e.g. out of memory) must not lose its numbers.
            log($"accuracy check of {probe.Name} failed: {e.Message.Split('\n')[0]}");
            return null;
        }
    }

    private static FactorisationAccuracy Compare(Probe probe, SvdAlgorithm algorithm)
    {
        using var scope = NewDisposeScope();
        var device = probe.Device;
        var w = probe.Weight.to(device);
        var h = probe.GramPipeline.to(device);
        var ours = Product(w, h, probe.Rank, algorithm);
        var reference = Product(w, h, probe.Rank, SvdAlgorithm.Direct);
        var allFp64 = Product(w, probe.Gram64.to(device), probe.Rank, SvdAlgorithm.Direct);

        // What a fp32 torch.linalg.svd of the whitened weight (the reference implementation's step) gives.
        using var whitening = Whitening.Cholesky(h, SvdLlm.DefaultWhiteningEpsilon);
        var whitened = whitening.Whiten(w).to(ScalarType.Float32);
        var (u, s, vh) = linalg.svd(whitened, fullMatrices: false);
        var k = (int)probe.Rank;
        var fp32Product = whitening.Unwhiten(matmul(u[.., ..k] * s[..k].unsqueeze(0), vh[..k]).to(ScalarType.Float64));

        var g64 = probe.Gram64.norm().item<double>();
        double GramError(Tensor g) => (g - probe.Gram64).norm().item<double>() / g64;
        return new FactorisationAccuracy(probe.Name, w.shape[0], w.shape[1], probe.Rank, algorithm.ToString(),
            Relative(ours, reference), Relative(fp32Product, reference),
            probe.PipelinePath, GramError(probe.GramPipeline), GramError(probe.GramFp32), GramError(probe.GramTf32),
            Relative(ours, allFp64));
    }

    private static Tensor Product(Tensor w, Tensor h, long rank, SvdAlgorithm algorithm)
    {
        using var factors = SvdLlm.Factorize(w, h, rank, algorithm, SvdLlm.DefaultWhiteningEpsilon, out _);
        return matmul(factors.A.to(ScalarType.Float64), factors.B.to(ScalarType.Float64));
    }

    private static double Relative(Tensor value, Tensor reference) =>
        (value - reference).norm().item<double>() / reference.norm().item<double>();
}
