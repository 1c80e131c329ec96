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
                var storedA = linear.A.to(storage);
                var storedB = linear.B!.to(storage);
                CheckStorable(linear.Name, "A", storedA, dtype);
                CheckStorable(linear.Name, "B", storedB, dtype);
                var a = storedA.to(computeA).MoveToOuterDisposeScope();
                var b = storedB.to(computeB).MoveToOuterDisposeScope();
                linear.Factorize(a, b);
            }
        }
    }

    /// <summary>Factors that overflow their storage dtype (fp16 saturates at ±65504 to ±Inf) or are not finite at all are an
    /// error (<see cref="ErrorCodes.DecompositionFailed"/>), never written.</summary>
    internal static void CheckStorable(string linear, string factor, Tensor stored, FactorDtype dtype) =>
        Compression.NonFinite.Check(stored, $"{linear}: factor {factor} in {dtype.ShortName()}", dtype == FactorDtype.Float16
            ? "the factors exceed fp16's range (±65504); store them as --factor-dtype fp32 or bf16"
            : "the factorisation is not finite");

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
}
