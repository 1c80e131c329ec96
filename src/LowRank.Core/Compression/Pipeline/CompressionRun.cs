using System.Diagnostics;
using LowRank.Models;
using LowRank.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>The state of one compression run, shared by the method pipelines.</summary>
internal sealed class CompressionRun : IDisposable
{
    private readonly IProgress<ProgressUpdate>? progress;
    private readonly Dictionary<string, ModuleReport> modules = new(StringComparer.Ordinal);
    private readonly Dictionary<int, BlockReport> blocks = [];
    private readonly Tensor? ids;

    public CompressionRun(IDecoderModel model, CompressionOptions options, Tensor? calibrationIds, IProgress<ProgressUpdate>? progress, CancellationToken token)
    {
        Model = model;
        Options = options;
        this.progress = progress;
        Token = token;
        Device = model.Device;
        Algorithm = SvdKernel.Resolve(options.SvdAlgorithm, Device);
        ids = calibrationIds?.to(ScalarType.Int64, CPU).DetachFromDisposeScope();
        Shapes = Enumerable.Range(0, model.BlockCount)
            .SelectMany(b => model.BlockLinears(b).Select(l => LinearShape.Of(l, b))).ToArray();
        Plan = options.Method.IsQuantizationOnly() || options.TargetBits is not null ? RankPlan.Dense(Shapes) : RankPlan.Uniform(Shapes, options.Ratio, options.RankMultiple);
    }

    public IDecoderModel Model { get; }
    public CompressionOptions Options { get; }
    public CancellationToken Token { get; }
    public Device Device { get; }
    public SvdAlgorithm Algorithm { get; }
    public IReadOnlyList<LinearShape> Shapes { get; }
    /// <summary>See <see cref="Compressor.Compress(IDecoderModel, Tensor?, CompressionOptions, IProgress{ProgressUpdate}?, Action{int}?, CancellationToken)"/>.</summary>
    public Action<int>? BlockCompleted { get; init; }
    /// <summary>The ranks this run compresses to: uniform (or dense) from the options, until an allocating method's
    /// planning step returns its own plan (<see cref="Follow"/>).</summary>
    public RankPlan Plan { get; private set; }

    /// <summary>Makes the run follow <paramref name="plan"/>, the plan an allocating method computed (SVD-LLM V2's loss
    /// allocation, adaCR, LC-SVD's rank search, <c>--target-bits</c>). Only before any linear is compressed, so every
    /// linear of a run follows one plan.</summary>
    public void Follow(RankPlan plan)
    {
        lock (modules)
        {
            if (modules.Count > 0) throw new InvalidOperationException("a run's plan cannot change once linears were compressed with it");
        }
        Plan = plan;
    }
    public Dictionary<string, double> Seconds { get; } = new(StringComparer.Ordinal);
    public int BlockCount => Model.BlockCount;
    public long Samples => ids?.shape[0] ?? 0;
    public long SequenceLength => ids?.shape[1] ?? 0;
    public Tensor Ids => ids ?? throw new InvalidOperationException("no calibration data");

    public void Report(string stage, int block, string message)
    {
        Token.ThrowIfCancellationRequested();
        progress?.Report(new ProgressUpdate(stage, message, block, BlockCount));
    }

    /// <summary>Sample indices per forward pass: consecutive, or a seeded shuffle grouped in whole buckets.</summary>
    public long[][] Batches(int bucketSize = 1)
    {
        var count = Samples;
        var order = Enumerable.Range(0, (int)count).Select(i => (long)i).ToArray();
        var size = Options.BatchSize;
        if (bucketSize > 1)
        {
            new Random((int)(Options.Seed & 0x7fffffff)).Shuffle(order);
            size = Math.Max(bucketSize, size / bucketSize * bucketSize);
        }
        return order.Chunk(size).ToArray();
    }

    /// <summary>The calibration set's embeddings; <paramref name="samples"/> = only the first that many samples.</summary>
    public HiddenStates EmbedCalibration(long? samples = null)
    {
        var config = Model.Config;
        var dtype = Model is DecoderModel decoder ? decoder.ComputeDtype : ScalarType.Float32;
        var count = Math.Min(samples ?? Samples, Samples);
        var storage = HiddenStates.ChooseStorage(Device, count, SequenceLength, config.HiddenSize, dtype, Options.DeviceHiddenStateLimit(Device));
        return HiddenStates.Embed(Model, count == Samples ? Ids : Ids.narrow(0, 0, count), storage, Options.BatchSize);
    }

    /// <summary>Runs block <paramref name="block"/> over every batch of <paramref name="input"/>; writes its outputs to
    /// <paramref name="output"/> when given; <paramref name="observer"/> makes a fresh observer per batch; <paramref name="perBatch"/>
    /// sees (indices, input, output) on the device.</summary>
    public void Sweep(int block, HiddenStates input, HiddenStates? output, Func<LinearInputObserver?>? observer = null,
        Action<long[], Tensor, Tensor>? perBatch = null, long[][]? batches = null)
    {
        using var held = Model.HoldOnDevice(block);
        foreach (var indices in batches ?? Batches())
        {
            Token.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var x = input.Batch(indices, Device);
            var y = Model.RunBlock(block, x, observer?.Invoke());
            // Before the write: with output = input (in place) x may be a view of the rows the write replaces.
            perBatch?.Invoke(indices, x, y);
            output?.Write(indices, y);
        }
    }

    /// <summary>
    /// The single-stream pipeline (ASVD, SVD-LLM, SVD-LLM V2 and their profiling passes): for each block, statistics are
    /// gathered on the stream, <paramref name="compress"/> runs, and the stream advances through the original block
    /// (<see cref="Propagation.Original"/>) or through the block as <paramref name="compress"/> left it. The stream is
    /// updated in place (each batch's outputs depend on its own inputs only), so it is held once.
    /// <para>With <paramref name="overlappable"/> and <see cref="Propagation.Original"/>, block i+1's statistics do not
    /// depend on block i's factors: block i's <paramref name="compress"/> then runs on a <see cref="DecompositionWorker"/>
    /// (<see cref="CompressionOptions.DecompositionOverlap"/>) while block i+1 is profiled. It owns the statistics and
    /// the block's device hold from then on. <paramref name="compress"/> must then touch only block i.</para>
    /// </summary>
    public void SingleStreamPass(string stage, Propagation propagation, Func<int, LinearStatistics> statistics, Action<int, LinearStatistics> compress,
        bool overlappable = false)
    {
        var clock = Stopwatch.StartNew();
        using var stream = EmbedCalibration();
        DecompositionWorker? worker = null;
        if (!overlappable) Overlap = "off (method)";
        else if (propagation != Propagation.Original) Overlap = "off (compressed propagation: block i+1 needs block i's factors)";
        else
        {
            worker = DecompositionWorker.Create(Options.DecompositionOverlap, Device, out var reason);
            Overlap = reason;
        }
        try
        {
            for (var block = 0; block < BlockCount; block++)
            {
                Report(stage, block, $"block {block + 1}/{BlockCount}: statistics");
                // The block stays on the device for its sweeps and its factorisation (one host↔device round trip).
                IDisposable? held = null;
                LinearStatistics? stats = null;
                try
                {
                    Timed("block_arrive", () => held = Model.HoldOnDevice(block));
                    stats = statistics(block);
                    var observed = stats;
                    if (propagation == Propagation.Original)
                    {
                        Timed("statistics", () => Sweep(block, stream, stream, observed.Observer));
                        if (worker is not null)
                        {
                            var (ownedStats, ownedHold, index) = (stats, held!, block);
                            stats = null;
                            held = null;
                            try
                            {
                                Timed("decomposition_wait", worker.Wait);
                            }
                            catch
                            {
                                // The previous block failed on the worker: this block's statistics were never handed over.
                                ownedStats.Dispose();
                                ownedHold.Dispose();
                                throw;
                            }
                            worker.Start(() =>
                            {
                                try
                                {
                                    Timed("decomposition", () => compress(index, ownedStats));
                                }
                                finally
                                {
                                    // Everything the side stream read is released only once it is done with it.
                                    CudaStreams.SynchronizeThisThread(Device);
                                    ownedStats.Dispose();
                                    Timed("block_leave", ownedHold.Dispose);
                                }
                                BlockCompleted?.Invoke(index);
                            });
                            continue;
                        }
                        Timed("decomposition", () => compress(block, observed));
                    }
                    else
                    {
                        Timed("statistics", () => Sweep(block, stream, null, observed.Observer));
                        Timed("decomposition", () => compress(block, observed));
                        Timed("propagation", () => Sweep(block, stream, stream));
                    }
                }
                finally
                {
                    stats?.Dispose();
                    if (held is not null) Timed("block_leave", held.Dispose);
                }
                BlockCompleted?.Invoke(block);
            }
            if (worker is not null) Timed("decomposition_wait", worker.Wait);
        }
        finally
        {
            worker?.Dispose();
        }
        lock (Seconds) Seconds[stage] = Seconds.GetValueOrDefault(stage) + clock.Elapsed.TotalSeconds;
    }

    /// <summary>rtn/gptq: what the quantization did (for the report).</summary>
    public QuantizationReport? Quantization { get; set; }

    /// <summary><c>--target-bits</c>: the allocation (for the report, and the formats the quantization pass uses).</summary>
    public BitAllocationReport? Allocation { get; set; }

    /// <summary>AdaSVD: how the original model was profiled (for the report).</summary>
    public string? OriginalPass { get; set; }

    /// <summary>Whether and how decompositions overlapped profiling in this run (for the report).</summary>
    public string Overlap { get; set; } = "off (method)";

    /// <summary>Runs <paramref name="work"/> and adds its wall time (device work included: the calling thread's CUDA
    /// stream is synchronised at the end) to <see cref="Seconds"/>[<paramref name="stage"/>]; the per-stage split of a
    /// run's time. Thread-safe: a <see cref="DecompositionWorker"/> times its stages too, so with overlap the stages
    /// add up to more than the wall time.</summary>
    public void Timed(string stage, Action work)
    {
        var clock = Stopwatch.StartNew();
        work();
        CudaStreams.SynchronizeThisThread(Device);
        lock (Seconds) Seconds[stage] = Seconds.GetValueOrDefault(stage) + clock.Elapsed.TotalSeconds;
    }

    /// <summary>The block's linears that the plan compresses (dense fallbacks are left as they are and reported).</summary>
    public IEnumerable<LinearWeight> Compressible(int block)
    {
        foreach (var linear in Model.BlockLinears(block))
        {
            var rank = Plan[linear.Name];
            if (rank.Dense) RecordDense(linear, rank);
            else yield return linear;
        }
    }

    /// <summary>The dense weight of a linear on the compute device (fp64 math happens there).</summary>
    public Tensor WeightOnDevice(LinearWeight linear)
    {
        var weight = (linear.Weight ?? throw new LrkException(ErrorCodes.BadMethodOption, $"{linear.Name} is already factorised: compress an uncompressed model")).to(Device);
        NonFinite.Check(weight, $"{linear.Name}: the weight", "a checkpoint with non-finite weights cannot be compressed");
        return weight;
    }

    /// <summary>Installs factors on a linear (in its dtype, on its home device) and records it.</summary>
    public void Apply(LinearWeight linear, LowRankFactors factors, string? whitening = null, double? objectiveBefore = null, double? objectiveAfter = null)
    {
        var home = linear.Weight!;
        var a = factors.A.to(home.dtype, home.device).contiguous();
        var b = factors.B.to(home.dtype, home.device).contiguous();
        if (!a.isfinite().all().item<bool>() || !b.isfinite().all().item<bool>())
            throw new LrkException(ErrorCodes.DecompositionFailed, $"{linear.Name}: the factorisation produced non-finite values");
        linear.Factorize(a, b);
        Record(linear.Name, factors, whitening, objectiveBefore, objectiveAfter);
    }

    public void Record(string name, LowRankFactors factors, string? whitening = null, double? objectiveBefore = null, double? objectiveAfter = null)
    {
        var rank = Plan[name];
        var report = new ModuleReport
        {
            Name = name, Kind = rank.Kind, Block = rank.Block, OutFeatures = rank.OutFeatures, InFeatures = rank.InFeatures,
            Retention = rank.Retention, Rank = factors.Rank, Dense = false, Parameters = factors.Rank * (rank.OutFeatures + rank.InFeatures),
            Whitening = whitening, RelativeTruncationLoss = RelativeLoss(factors),
            ObjectiveBefore = objectiveBefore, ObjectiveAfter = objectiveAfter,
        };
        lock (modules) modules[name] = report;
    }

    public void RecordDense(LinearWeight linear, ModuleRank rank)
    {
        var report = new ModuleReport
        {
            Name = linear.Name, Kind = rank.Kind, Block = rank.Block, OutFeatures = rank.OutFeatures, InFeatures = rank.InFeatures,
            Retention = rank.Retention, Rank = rank.Rank, Dense = true, Parameters = rank.DenseParameters,
        };
        lock (modules) modules[linear.Name] = report;
    }

    private static double RelativeLoss(LowRankFactors factors)
    {
        using var scope = NewDisposeScope();
        var energy = Math.Sqrt(factors.SingularValues.to(ScalarType.Float64).square().sum().item<double>());
        return energy > 0 ? factors.TruncationLoss / energy : 0;
    }

    public void SetBlockReport(BlockReport report) => blocks[report.Block] = report;

    public BlockReport? BlockReportOf(int block) => blocks.GetValueOrDefault(block);

    public CompressionReport BuildReport()
    {
        // The achieved ratio counts what is really stored: a refit may only lower a rank, never raise it.
        var stored = Plan.Modules.Select(m => modules.TryGetValue(m.Name, out var r) && !r.Dense
            ? m with { Rank = r.Rank, Dense = false }
            : m with { Dense = true, Rank = Math.Min(m.OutFeatures, m.InFeatures) });
        var achieved = new RankPlan(Options.Ratio, stored);
        return new CompressionReport
        {
            Method = Options.Method.Name(),
            Options = Options,
            Propagation = Options.EffectivePropagation.ToString(),
            Ratio = achieved.Summarize(RankPlan.OtherParameters(Model)),
            Modules = Plan.Modules.Select(m => modules.TryGetValue(m.Name, out var r) ? r : throw new InvalidOperationException($"{m.Name} was not processed")).ToArray(),
            Blocks = blocks.Values.OrderBy(b => b.Block).ToArray(),
            CalibrationSamples = Samples,
            CalibrationSequenceLength = SequenceLength,
            Device = Device.ToString(),
            DecompositionOverlap = Overlap,
            OriginalPass = OriginalPass,
            GramPath = LinearStatistics.Resolve(Options.GramPrecision, Model is DecoderModel decoder ? decoder.ComputeDtype : ScalarType.Float32, Device).ToString(),
            Quantization = Quantization,
            Allocation = Allocation,
            Seconds = Seconds,
        };
    }

    public void Dispose() => ids?.Dispose();
}
