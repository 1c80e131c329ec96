using System.Diagnostics;
using System.Text.Json.Nodes;
using LowRank.Cache;
using LowRank.IO;
using LowRank.Models;
using LowRank.Quantization;
using static TorchSharp.torch;

namespace LowRank.Artifacts;

/// <summary>What the manifest records beyond what the writer can see for itself.</summary>
public sealed record ArtifactProvenance
{
    public int? Seed { get; init; }

    /// <summary>Every knob the method ran with (e.g. alpha, rounds, allocation), as the method reports them.</summary>
    public JsonObject? MethodOptions { get; init; }

    public ManifestCalibration? Calibration { get; init; }

    /// <summary>How <see cref="Metrics"/> were measured.</summary>
    public JsonNode? Evaluation { get; init; }

    /// <summary>Measured numbers, e.g. <c>{"ppl_before": 14.6, "ppl_after": 19.2}</c>.</summary>
    public JsonObject? Metrics { get; init; }

    /// <summary>Seconds per stage so far (load, calibrate, compress, evaluate); the writer adds <c>write</c>.</summary>
    public IReadOnlyDictionary<string, double>? TimingsSeconds { get; init; }

    public ManifestTool Tool { get; init; } = ManifestTool.Current();
}

/// <summary>Everything <see cref="ArtifactWriter.Write"/> needs to turn a compressed in-memory model into an artifact folder.</summary>
public sealed record ArtifactRequest
{
    /// <summary>The compressed model. Factorised linears are written as factors; everything else is taken from the source.</summary>
    public required IDecoderModel Model { get; init; }

    /// <summary>The model that was compressed: an HF folder (its safetensors give the untouched tensors byte for byte, its
    /// config.json the config), or a llama2.c checkpoint file (tensors and config then come from <see cref="Model"/>).</summary>
    public required string SourcePath { get; init; }

    public required string OutputFolder { get; init; }

    /// <summary>The method's canonical name (<see cref="Compression.CompressionMethods"/>).</summary>
    public required string Method { get; init; }

    /// <summary>The requested fraction of parameters removed from the compressed linears.</summary>
    public required double RequestedRatio { get; init; }

    /// <summary>Dtype of the stored factors; null = the source's <c>torch_dtype</c> (fp32 when it is none of fp32/fp16/bf16).</summary>
    public FactorDtype? FactorDtype { get; init; }

    /// <summary>The linears the method was asked to compress (for <see cref="LowRankSection.AchievedRatio"/>); null = every block linear.</summary>
    public IReadOnlyCollection<string>? TargetLinears { get; init; }

    /// <summary>Files copied into the artifact besides the source's tokenizer files (e.g. a tokenizer kept elsewhere).</summary>
    public IReadOnlyList<string> ExtraFiles { get; init; } = [];

    /// <summary>Further files written into the artifact (name → UTF-8 text), e.g. the compression report; listed in the manifest like every file.</summary>
    public IReadOnlyDictionary<string, string> ExtraContent { get; init; } = new Dictionary<string, string>();

    /// <summary>Replace an existing output folder (after the new one is complete).</summary>
    public bool Overwrite { get; init; }

    /// <summary>Largest safetensors file; above it the weights are sharded with an index (transformers' layout).</summary>
    public long MaxShardBytes { get; init; } = 4L << 30;

    public ArtifactProvenance Provenance { get; init; } = new();

    /// <summary>The source's digest, when the caller started computing it already (so that hashing a large source overlaps
    /// the compression); null = computed by the writer.</summary>
    public Task<ModelDigestResult>? SourceDigest { get; init; }

    /// <summary>Weight shards written at once (see <see cref="SafeTensorsWriter.WriteModel"/>).</summary>
    public int ParallelShards { get; init; } = 4;

    /// <summary>The quantizer that made the model's quantized linears, if it has any (recorded in the section).</summary>
    public Quantizer Quantizer { get; init; } = Quantizer.Gptq;
}

public sealed record ArtifactWriteResult(string Folder, LowRankSection Section, ArtifactManifest Manifest);

/// <summary>
/// Writes a compressed artifact (README, "The compressed artifact"): an HF model folder whose factorised linears are
/// stored as <c>&lt;linear&gt;.lowrank_A.weight</c> [out, k] and <c>&lt;linear&gt;.lowrank_B.weight</c> [k, in] in the
/// position of <c>&lt;linear&gt;.weight</c>, every other tensor byte-identical to the source, <c>config.json</c> = the
/// source's plus a <c>lowrank</c> section and the artifact's own transformers names (<see cref="HuggingFaceRemoteCode"/>,
/// with <c>modeling_lowrank.py</c>), the tokenizer files and the source's licence and notice files copied
/// (<see cref="SourceNotices"/>), a model card (<see cref="ModelCard"/>), and <c>lowrank-manifest.json</c> written last.
/// The folder is assembled under a hidden temp name next to the target and renamed at the end, so a cancelled or
/// failed write leaves nothing behind.
/// </summary>
public static class ArtifactWriter
{
    /// <summary>Fails early (before a long compression) when the output cannot be written: it exists without
    /// <paramref name="overwrite"/>, it is, contains or lies inside the source (links resolved), or it cannot be created
    /// (<see cref="OutputFolderCheck"/>).</summary>
    public static void CheckOutput(string outputFolder, string sourcePath, bool overwrite) =>
        OutputFolderCheck.Check(outputFolder, overwrite, sourcePath);

    /// <summary>The factor dtype a request resolves to: the one asked for, else the source's torch_dtype, else fp32.</summary>
    public static FactorDtype ResolveFactorDtype(FactorDtype? requested, ModelConfig config) =>
        requested ?? FactorDtypes.FromTorchDtype(config.TorchDtype) ?? FactorDtype.Float32;

    /// <summary>
    /// Rounds every factor of <paramref name="model"/> to <paramref name="dtype"/> and back to its compute dtype, so
    /// that what is evaluated in memory after compression is exactly what the artifact will hold. Call it before
    /// measuring the compressed model's perplexity.
    /// </summary>
    public static void RoundFactorsToStorage(IDecoderModel model, FactorDtype dtype)
    {
        var storage = dtype.ToScalarType();
        for (var block = 0; block < model.BlockCount; block++)
        {
            foreach (var linear in model.BlockLinears(block))
            {
                // Quantized factors hold exactly what is stored already.
                if (!linear.IsFactorized || linear.IsQuantized || (linear.A!.dtype == storage && linear.B!.dtype == storage)) continue;
                var computeA = linear.A!.dtype;
                var computeB = linear.B!.dtype;
                using var scope = NewDisposeScope();
                var a = linear.A.to(storage).to(computeA).MoveToOuterDisposeScope();
                var b = linear.B!.to(storage).to(computeB).MoveToOuterDisposeScope();
                linear.Factorize(a, b);
            }
        }
    }

    public static ArtifactWriteResult Write(ArtifactRequest request, IProgress<ProgressUpdate>? progress = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        CheckOutput(request.OutputFolder, request.SourcePath, request.Overwrite);
        var clock = Stopwatch.StartNew();
        var factorDtype = ResolveFactorDtype(request.FactorDtype, request.Model.Config);
        return ArtifactFiles.PublishFolder(request.OutputFolder, request.Overwrite, temp =>
        {
            using var store = Directory.Exists(request.SourcePath) ? TensorStore.Open(request.SourcePath) : null;
            var plan = new TensorPlan(request.Model, store, factorDtype, request.TargetLinears, quantizer: request.Quantizer);
            var specs = plan.Specs;
            var reported = specs.Select((spec, i) => spec with
            {
                Produce = () =>
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    progress?.Report(new ProgressUpdate("write", spec.Name, i, specs.Count));
                    return spec.Produce();
                },
            }).ToList();
            var written = new System.Collections.Concurrent.ConcurrentDictionary<string, string>(StringComparer.Ordinal);
            SafeTensorsWriter.WriteModel(temp, reported, maxShardBytes: request.MaxShardBytes, sha256: written, parallelShards: request.ParallelShards);
            return Finish(temp, request, plan.Section(request.Method, request.RequestedRatio), plan.ModifiedTensors, written, clock, progress, cancellationToken);
        });
    }

    /// <summary>Everything after the weights: config.json with the lowrank section, the copied and extra files, and the
    /// manifest (written last). <paramref name="weightHashes"/>: SHA-256 of the weight files computed while they were written.</summary>
    internal static ArtifactWriteResult Finish(string temp, ArtifactRequest request, LowRankSection section, IEnumerable<string> modifiedTensors,
        IReadOnlyDictionary<string, string> weightHashes, Stopwatch clock, IProgress<ProgressUpdate>? progress, CancellationToken cancellationToken)
    {
        progress?.Report(new ProgressUpdate("digest", $"hashing the source model {request.SourcePath}"));
        var sourceDigest = request.SourceDigest is { } pending ? pending.GetAwaiter().GetResult() : ModelDigest.Compute(request.SourcePath);
        cancellationToken.ThrowIfCancellationRequested();
        var sourceFolder = Directory.Exists(request.SourcePath) ? Path.GetFullPath(request.SourcePath) : Path.GetDirectoryName(Path.GetFullPath(request.SourcePath))!;
        var config = SourceConfig(request);
        var sourceConfig = (JsonObject)config.DeepClone();
        var factorDtype = ResolveFactorDtype(request.FactorDtype, request.Model.Config);
        config[ArtifactFormat.LowRankSectionName] = section.ToJson();
        HuggingFaceRemoteCode.Apply(config, request.Model.Config.Family);
        ArtifactJson.Write(Path.Combine(temp, ArtifactFormat.ConfigFileName), config);
        File.WriteAllText(Path.Combine(temp, HuggingFaceRemoteCode.ModelingFileName), HuggingFaceRemoteCode.ModelingSource);
        var notices = SourceNotices.Copy(Directory.Exists(request.SourcePath) ? sourceFolder : null, temp, cancellationToken);
        CopyFiles(sourceFolder, request.ExtraFiles, temp, cancellationToken);
        foreach (var (name, text) in request.ExtraContent)
        {
            if (name != Path.GetFileName(name) || ArtifactFormat.IsWrittenByWriter(name))
                throw new ArgumentException($"'{name}' cannot be written as extra artifact content", nameof(request));
            File.WriteAllText(Path.Combine(temp, name), text);
        }
        File.WriteAllText(Path.Combine(temp, ModelCard.FileName), ModelCard.Render(new ModelCardFacts
        {
            Name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(request.OutputFolder))),
            SourcePath = request.SourcePath,
            Family = request.Model.Config.Family,
            Section = section,
            Tool = request.Provenance.Tool,
            Notices = notices,
            BaseModel = ModelCard.BaseModelId(request.SourcePath, sourceConfig),
            Calibration = request.Provenance.Calibration,
            Seed = request.Provenance.Seed,
            Metrics = request.Provenance.Metrics,
            Evaluation = request.Provenance.Evaluation,
        }));

        progress?.Report(new ProgressUpdate("manifest", "hashing the artifact's files"));
        var files = ArtifactFiles.Describe(temp, [ArtifactFormat.ManifestFileName], weightHashes, cancellationToken);
        var timings = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var (stage, seconds) in request.Provenance.TimingsSeconds ?? new Dictionary<string, double>()) timings[stage] = Math.Round(seconds, 3);
        timings["write"] = Math.Round(clock.Elapsed.TotalSeconds, 3);
        var manifest = new ArtifactManifest
        {
            FormatVersion = section.FormatVersion,
            Tool = request.Provenance.Tool,
            CreatedUtc = DateTimeOffset.UtcNow,
            Source = new ManifestSource(request.SourcePath, sourceDigest.Digest, sourceDigest.Files),
            Method = new ManifestMethod(section.Method, section.RequestedRatio, section.AchievedRatio, section.AchievedRatioModel,
                section.Quantization is { } quantization ? quantization.Common?.ToString() ?? "mixed" : factorDtype.TorchName(), request.Provenance.MethodOptions),
            Seed = request.Provenance.Seed,
            Calibration = request.Provenance.Calibration,
            Evaluation = request.Provenance.Evaluation,
            Metrics = request.Provenance.Metrics,
            TimingsSeconds = timings,
            ModifiedTensors = modifiedTensors.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList(),
            Files = files,
        };
        cancellationToken.ThrowIfCancellationRequested();
        File.WriteAllText(Path.Combine(temp, ArtifactFormat.ManifestFileName), manifest.ToJson());
        return new ArtifactWriteResult(Path.GetFullPath(request.OutputFolder), section, manifest);
    }

    /// <summary>The source's config.json as written (key order and unknown keys kept), else the model's own
    /// (a llama2.c checkpoint's HF-equivalent config). A previous <c>lowrank</c> section is replaced.</summary>
    private static JsonObject SourceConfig(ArtifactRequest request)
    {
        var path = Directory.Exists(request.SourcePath) ? Path.Combine(request.SourcePath, ArtifactFormat.ConfigFileName) : null;
        if (path is not null && File.Exists(path)) return ArtifactJson.ReadObject(path, ErrorCodes.BadConfig);
        return request.Model.Config.Raw?.DeepClone() as JsonObject
            ?? throw new LrkException(ErrorCodes.BadConfig, $"{request.SourcePath}: no config.json and the loaded model carries no HF config to write");
    }

    private static void CopyFiles(string sourceFolder, IReadOnlyList<string> extraFiles, string temp, CancellationToken cancellationToken)
    {
        var files = Directory.EnumerateFiles(sourceFolder).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        foreach (var name in files)
        {
            if (name is null || !ArtifactFormat.IsCopiedFile(name)) continue;
            cancellationToken.ThrowIfCancellationRequested();
            // A llama2.c tokenizer beside its checkpoint (tok512.bin) becomes the tokenizer.bin a model folder has.
            var target = name != "tokenizer.bin" && name.EndsWith(".bin", StringComparison.Ordinal) && !files.Contains("tokenizer.bin") ? "tokenizer.bin" : name;
            File.Copy(Path.Combine(sourceFolder, name), Path.Combine(temp, target), overwrite: true);
        }
        foreach (var file in extraFiles)
        {
            if (!File.Exists(file)) throw new LrkException(ErrorCodes.ModelNotFound, $"{file}: not found (a file to copy into the artifact)");
            var name = Path.GetFileName(file);
            if (ArtifactFormat.IsWrittenByWriter(name))
                throw new LrkException(ErrorCodes.BadArgument, $"{file}: '{name}' is written by the artifact writer and cannot be copied in");
            File.Copy(file, Path.Combine(temp, name), overwrite: true);
        }
    }

    /// <summary>
    /// Decides, tensor by tensor in the source's order, what the artifact stores: factors for a factorised linear
    /// (at the position of its weight), the source bytes for anything the model did not change, and the model's
    /// values (in the source dtype) for the rare tensor a method changed. Counts parameters on the way.
    /// </summary>
    internal sealed class TensorPlan
    {
        private readonly IDecoderModel model;
        private readonly FactorDtype factorDtype;
        private readonly Dictionary<string, LinearWeight> linears = new(StringComparer.Ordinal);
        private readonly HashSet<string> targets;
        private readonly long modelBefore;
        private readonly HashSet<string> modified = new(StringComparer.Ordinal);
        private readonly Func<string, bool>? include;
        private readonly Quantizer quantizer;
        private readonly Dictionary<string, string> sourceDtypes = new(StringComparer.Ordinal);
        private readonly HashSet<string> quantizedTensors = new(StringComparer.Ordinal);

        /// <param name="include">Only the source tensors it accepts (an <see cref="StreamedArtifact"/> shard); null = all.</param>
        /// <param name="quantizer">Which quantizer made the model's quantized linears (recorded in the section).</param>
        public TensorPlan(IDecoderModel model, TensorStore? store, FactorDtype factorDtype, IReadOnlyCollection<string>? targetLinears,
            Func<string, bool>? include = null, Quantizer quantizer = Quantizer.Gptq)
        {
            this.include = include;
            this.quantizer = quantizer;
            if (store is not null)
                foreach (var entry in store.Entries) sourceDtypes[entry.Name] = entry.Dtype;
            this.model = model;
            this.factorDtype = factorDtype;
            for (var block = 0; block < model.BlockCount; block++)
                foreach (var linear in model.BlockLinears(block)) linears[linear.Name] = linear;
            targets = new HashSet<string>(targetLinears ?? linears.Keys, StringComparer.Ordinal);
            foreach (var name in targets)
                if (!linears.ContainsKey(name)) throw new LrkException(ErrorCodes.BadArgument, $"target linear '{name}' is not a linear of the model");
            Specs = store is null ? FromModel() : FromStore(store);
            modelBefore = store?.Entries.Sum(e => e.ElementCount)
                ?? model.OtherTensors.Values.Sum(t => t.NumberOfElements) + linears.Values.Sum(l => l.OutFeatures * l.InFeatures + (l.Bias?.NumberOfElements ?? 0));
        }

        public List<TensorSpec> Specs { get; }

        public IReadOnlyCollection<string> ModifiedTensors
        {
            get
            {
                lock (modified) return modified.ToArray();
            }
        }

        public LowRankSection Section(string method, double requestedRatio)
        {
            long targetBefore = 0, targetAfter = 0, bytesBefore = 0, bytesAfter = 0;
            var ranks = new SortedDictionary<string, int>(StringComparer.Ordinal);
            var quantized = new SortedDictionary<string, QuantizedLinear>(StringComparer.Ordinal);
            foreach (var name in targets)
            {
                var linear = linears[name];
                targetBefore += linear.OutFeatures * linear.InFeatures;
                targetAfter += linear.ParameterCount;
                bytesBefore += linear.OutFeatures * linear.InFeatures * SourceElementBytes(name);
                bytesAfter += StoredBytes(linear);
            }
            foreach (var linear in linears.Values.Where(l => l.IsFactorized)) ranks[linear.Name] = checked((int)linear.Rank);
            foreach (var linear in linears.Values.Where(l => l.IsQuantized))
                quantized[linear.Name] = new QuantizedLinear((linear.QuantizedWeight ?? linear.QuantizedA!).Format, linear.OutFeatures, linear.InFeatures);
            // Quantized tensors count as the parameters they stand for, not as their bytes.
            var modelAfter = Specs.Where(s => !quantizedTensors.Contains(s.Name)).Sum(s => s.Shape.Aggregate(1L, (p, d) => p * d))
                + linears.Values.Where(l => l.IsQuantized).Sum(l => l.ParameterCount);
            return new LowRankSection
            {
                FormatVersion = quantized.Count > 0 ? ArtifactFormat.Version : ArtifactFormat.PlainVersion,
                Method = method,
                RequestedRatio = requestedRatio,
                AchievedRatio = targetBefore == 0 ? 0 : 1.0 - (double)targetAfter / targetBefore,
                AchievedRatioModel = modelBefore == 0 ? 0 : 1.0 - (double)modelAfter / modelBefore,
                FactorDtype = factorDtype,
                Parameters = new ParameterCounts(targetBefore, targetAfter, modelBefore, modelAfter),
                TruncationRanks = ranks,
                Quantization = quantized.Count > 0 ? new ArtifactQuantization { Quantizer = quantizer, Linears = quantized } : null,
                LinearBytes = targetBefore == 0 ? null : new LinearBytes(bytesBefore, bytesAfter, 8.0 * bytesAfter / targetBefore),
            };
        }

        /// <summary>Bytes the artifact stores for a linear's weight (bias excluded).</summary>
        private long StoredBytes(LinearWeight linear)
        {
            if (linear.QuantizedWeight is { } w) return w.Bytes;
            if (linear.QuantizedA is { } a) return a.Bytes + linear.QuantizedB!.Bytes;
            if (linear.IsFactorized) return linear.ParameterCount * FactorElementBytes;
            return linear.OutFeatures * linear.InFeatures * SourceElementBytes(linear.Name);
        }

        private long FactorElementBytes => factorDtype == FactorDtype.Float32 ? 4 : 2;

        /// <summary>Element size of a linear's weight in the source (the config's dtype for a source without safetensors).</summary>
        private long SourceElementBytes(string linear)
        {
            if (sourceDtypes.TryGetValue(linear + ArtifactFormat.WeightSuffix, out var dtype) && SafeTensorsDtypes.TryGetElementSize(dtype, out var size)) return size;
            return (FactorDtypes.FromTorchDtype(model.Config.TorchDtype) ?? FactorDtype.Float32) == FactorDtype.Float32 ? 4 : 2;
        }

        private List<TensorSpec> FromStore(TensorStore store)
        {
            var specs = new List<TensorSpec>();
            var byTensor = new Dictionary<string, (LinearWeight Linear, bool IsBias)>(StringComparer.Ordinal);
            foreach (var linear in linears.Values)
            {
                foreach (var suffix in new[] { ArtifactFormat.WeightSuffix, ArtifactFormat.FactorASuffix, ArtifactFormat.FactorBSuffix })
                    byTensor[linear.Name + suffix] = (linear, false);
                byTensor[linear.Name + ".bias"] = (linear, true);
            }
            var emitted = new HashSet<string>(StringComparer.Ordinal);
            foreach (var name in store.Names)
            {
                if (include is not null && !include(name)) continue;
                var entry = store.Info(name);
                var stored = SafeTensorsDtypes.ToScalarType(entry.Dtype)
                    ?? throw new LrkException(ErrorCodes.BadSafetensors, $"{store.Folder}: tensor '{name}' has dtype {entry.Dtype}, which cannot be carried into an artifact");
                if (byTensor.TryGetValue(name, out var owner) && !owner.IsBias)
                {
                    var linear = owner.Linear;
                    if (!emitted.Add(linear.Name)) continue;
                    if (linear.IsFactorized || linear.IsQuantized)
                    {
                        specs.AddRange(FactorSpecs(linear));
                    }
                    else if (name == linear.Name + ArtifactFormat.WeightSuffix)
                    {
                        var conv1D = ArtifactFormat.IsConv1D(model.Config.Family, linear.Name);
                        specs.Add(SourceOrModel(store, name, stored, entry.Shape, () => conv1D ? linear.Weight!.t() : linear.Weight!));
                    }
                    else
                    {
                        // The source stored this linear factorised and the model holds it dense again: store it dense.
                        var conv1D = ArtifactFormat.IsConv1D(model.Config.Family, linear.Name);
                        long[] shape = conv1D ? [linear.InFeatures, linear.OutFeatures] : [linear.OutFeatures, linear.InFeatures];
                        specs.Add(new TensorSpec(linear.Name + ArtifactFormat.WeightSuffix, stored, shape, () => conv1D ? linear.Weight!.t() : linear.Weight!));
                        modified.Add(linear.Name + ArtifactFormat.WeightSuffix);
                    }
                }
                else if (owner.Linear is { } biased && owner.IsBias)
                {
                    specs.Add(SourceOrModel(store, name, stored, entry.Shape, () => biased.Bias));
                }
                else if (model.OtherTensors.TryGetValue(name, out var other))
                {
                    specs.Add(SourceOrModel(store, name, stored, entry.Shape, () => other));
                }
                else
                {
                    specs.Add(new TensorSpec(name, stored, entry.Shape, () => store.Load(name)));
                }
            }
            var missing = linears.Keys.Where(n => !emitted.Contains(n)).Order(StringComparer.Ordinal).ToList();
            if (missing.Count > 0 && include is null)
                throw new LrkException(ErrorCodes.BadArtifact,
                    $"{store.Folder}: the source holds no weight for the model's linear(s) {string.Join(", ", missing.Take(3))}; was the model loaded from this folder?");
            return specs;
        }

        /// <summary>The source tensor when the model's copy equals it (so its bytes pass through unchanged), else the model's.</summary>
        private TensorSpec SourceOrModel(TensorStore store, string name, ScalarType stored, long[] shape, Func<Tensor?> inModel) =>
            new(name, stored, shape, () =>
            {
                var source = store.Load(name);
                var current = inModel();
                if (current is null || !current.shape.SequenceEqual(shape)) return source;
                if (Same(source, current)) return source;
                lock (modified) modified.Add(name);
                return current;
            });

        private static bool Same(Tensor source, Tensor current)
        {
            using var scope = NewDisposeScope();
            var comparable = source.dtype == current.dtype && source.device == current.device ? source : source.to(current.dtype, current.device);
            return !comparable.ne(current).any().item<bool>();
        }

        /// <summary>What a factorised or quantized linear stores in place of its weight: float factors, quantized factors
        /// (<c>.lowrank_A.qweight</c>, …) or a quantized weight (<c>.qweight</c>, …).</summary>
        private IEnumerable<TensorSpec> FactorSpecs(LinearWeight linear)
        {
            if (linear.QuantizedWeight is { } weight)
                return Quantized(linear.Name, weight);
            if (linear.QuantizedA is { } a)
                return Quantized(linear.Name + ArtifactFormat.FactorAPrefix, a).Concat(Quantized(linear.Name + ArtifactFormat.FactorBPrefix, linear.QuantizedB!));
            return FloatFactorSpecs(linear);
        }

        private List<TensorSpec> Quantized(string prefix, QuantizedMatrix matrix)
        {
            var specs = QuantizedMatrix.Layout(prefix, matrix.Format, matrix.Rows, matrix.Columns).Zip(matrix.Named(prefix),
                (layout, named) => new TensorSpec(layout.Name, layout.Dtype, layout.Shape, () => named.Tensor)).ToList();
            foreach (var spec in specs) quantizedTensors.Add(spec.Name);
            return specs;
        }

        private IEnumerable<TensorSpec> FloatFactorSpecs(LinearWeight linear)
        {
            var dtype = factorDtype.ToScalarType();
            yield return new TensorSpec(linear.Name + ArtifactFormat.FactorASuffix, dtype, [linear.OutFeatures, linear.Rank], () => linear.A!);
            yield return new TensorSpec(linear.Name + ArtifactFormat.FactorBSuffix, dtype, [linear.Rank, linear.InFeatures], () => linear.B!);
        }

        /// <summary>No safetensors source (a llama2.c checkpoint): every tensor comes from the model, non-factors in the config's dtype.</summary>
        private List<TensorSpec> FromModel()
        {
            var dense = FactorDtypes.FromTorchDtype(model.Config.TorchDtype)?.ToScalarType();
            var specs = new List<TensorSpec>();
            foreach (var (name, tensor) in model.OtherTensors)
                specs.Add(new TensorSpec(name, dense ?? tensor.dtype, tensor.shape, () => tensor));
            foreach (var linear in linears.Values)
            {
                if (linear.IsFactorized || linear.IsQuantized)
                {
                    specs.AddRange(FactorSpecs(linear));
                }
                else
                {
                    var conv1D = ArtifactFormat.IsConv1D(model.Config.Family, linear.Name);
                    long[] shape = conv1D ? [linear.InFeatures, linear.OutFeatures] : [linear.OutFeatures, linear.InFeatures];
                    specs.Add(new TensorSpec(linear.Name + ArtifactFormat.WeightSuffix, dense ?? linear.Weight!.dtype, shape, () => conv1D ? linear.Weight!.t() : linear.Weight!));
                }
                if (linear.Bias is { } bias)
                    specs.Add(new TensorSpec(linear.Name + ".bias", dense ?? bias.dtype, bias.shape, () => bias));
            }
            return specs;
        }
    }
}
