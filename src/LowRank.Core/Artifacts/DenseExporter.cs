using System.Text.Json.Nodes;
using LowRank.Models;
using LowRank.Quantization;
using static TorchSharp.torch;

namespace LowRank.Artifacts;

public sealed record DenseExportOptions
{
    /// <summary>Dtype of the merged weights W = A·B; null = the config's torch_dtype (fp32 when it is none of the three).</summary>
    public FactorDtype? Dtype { get; init; }

    public bool Overwrite { get; init; }

    public long MaxShardBytes { get; init; } = 4L << 30;
}

public sealed record DenseExportResult(string Folder, string Dtype, int LinearsMerged, long Parameters, IReadOnlyList<string> Files);

/// <summary>
/// Turns a compressed artifact into an ordinary dense checkpoint for consumers without low-rank support
/// (<c>dotnet lowrank export --dense</c>): each factor pair becomes <c>&lt;linear&gt;.weight</c> = A·B (multiplied in
/// fp64, stored in the chosen dtype; GPT-2 Conv1D weights transposed back to [in, out]), quantized factors Â·B̂ and
/// quantized weights their dequantized values (<see cref="QuantizedMatrix.Dequantize"/>), every other tensor is copied
/// byte for byte, <c>config.json</c> loses its <c>lowrank</c> section and gets the stock model_type and architectures
/// back (no <c>auto_map</c>: <see cref="HuggingFaceRemoteCode.Revert"/>), and the tokenizer files and the source's licence
/// and notice files are copied. No manifest, no model card, no modeling code: the result is a plain HF folder that stock
/// transformers loads. Written through a temp folder and renamed.
/// </summary>
public static class DenseExporter
{
    public static DenseExportResult Export(string artifactFolder, string outputFolder, DenseExportOptions? options = null,
        IProgress<ProgressUpdate>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new DenseExportOptions();
        if (!Directory.Exists(artifactFolder)) throw new LrkException(ErrorCodes.ModelNotFound, $"{artifactFolder}: no such artifact folder");
        ArtifactWriter.CheckOutput(outputFolder, artifactFolder, options.Overwrite);
        var configPath = Path.Combine(artifactFolder, ArtifactFormat.ConfigFileName);
        var config = ArtifactJson.ReadObject(configPath, ErrorCodes.BadArtifact);
        if (config[ArtifactFormat.LowRankSectionName] is not JsonObject sectionJson)
            throw new LrkException(ErrorCodes.BadArtifact, $"{artifactFolder}: config.json has no '{ArtifactFormat.LowRankSectionName}' section; it is already a dense model");
        var section = LowRankSection.FromJson(sectionJson, configPath);
        var quantized = section.Quantization?.Linears ?? new Dictionary<string, QuantizedLinear>();
        var modelConfig = ModelConfigReader.Read(artifactFolder);
        var dtype = (options.Dtype ?? FactorDtypes.FromTorchDtype(modelConfig.TorchDtype) ?? FactorDtype.Float32);
        HuggingFaceRemoteCode.Revert(config, modelConfig.Family);
        config.Remove(ArtifactFormat.LowRankSectionName);

        return ArtifactFiles.PublishFolder(outputFolder, options.Overwrite, temp =>
        {
            using var store = TensorStore.Open(artifactFolder);
            var specs = new List<TensorSpec>();
            var merged = 0;
            var total = store.Names.Count(n => n.EndsWith(ArtifactFormat.FactorASuffix, StringComparison.Ordinal)) + quantized.Count;
            var quantizedParts = quantized.Keys
                .SelectMany(linear => new[] { linear, linear + ArtifactFormat.FactorAPrefix, linear + ArtifactFormat.FactorBPrefix })
                .SelectMany(prefix => new[] { QuantizedMatrix.CodesSuffix, QuantizedMatrix.ScalesSuffix, QuantizedMatrix.ZerosSuffix }.Select(suffix => prefix + suffix))
                .Where(store.Contains).ToHashSet(StringComparer.Ordinal);
            var dequantized = new HashSet<string>(StringComparer.Ordinal);

            // A quantized linear becomes its dequantized weight (or Â·B̂) at the position of its codes (A's for factors).
            TensorSpec? QuantizedSpec(string name)
            {
                if (!name.EndsWith(QuantizedMatrix.CodesSuffix, StringComparison.Ordinal)) return null;
                var prefix = name[..^QuantizedMatrix.CodesSuffix.Length];
                if (prefix.EndsWith(ArtifactFormat.FactorBPrefix, StringComparison.Ordinal)) return null;
                var factored = prefix.EndsWith(ArtifactFormat.FactorAPrefix, StringComparison.Ordinal);
                var linear = factored ? prefix[..^ArtifactFormat.FactorAPrefix.Length] : prefix;
                var info = quantized[linear];
                if (!dequantized.Add(linear)) throw new LrkException(ErrorCodes.BadArtifact, $"{artifactFolder}: '{linear}' is stored both dense and factorised");
                var conv1D = ArtifactFormat.IsConv1D(modelConfig.Family, linear);
                long[] shape = conv1D ? [info.InFeatures, info.OutFeatures] : [info.OutFeatures, info.InFeatures];
                var index = merged++;
                return new TensorSpec(linear + ArtifactFormat.WeightSuffix, dtype.ToScalarType(), shape, () =>
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    progress?.Report(new ProgressUpdate("export", linear, index, total));
                    Tensor weight;
                    if (factored)
                    {
                        var rank = section.TruncationRanks.TryGetValue(linear, out var k) ? k
                            : throw new LrkException(ErrorCodes.BadArtifact, $"{artifactFolder}: '{linear}' is stored as quantized factors but has no truncation rank");
                        using var b = Matrix(linear + ArtifactFormat.FactorBPrefix, info.Format, rank, info.InFeatures);
                        using var a = Matrix(prefix, info.Format, info.OutFeatures, rank);
                        weight = matmul(a.Dequantize(ScalarType.Float64), b.Dequantize(ScalarType.Float64));
                    }
                    else
                    {
                        using var w = Matrix(prefix, info.Format, info.OutFeatures, info.InFeatures);
                        weight = w.Dequantize(ScalarType.Float64);
                    }
                    return conv1D ? weight.t() : weight;
                });
            }

            QuantizedMatrix Matrix(string prefix, QuantFormat format, long rows, long cols)
            {
                var zeros = prefix + QuantizedMatrix.ZerosSuffix;
                return QuantizedMatrix.FromStored(prefix, format, rows, cols, store.Load(prefix + QuantizedMatrix.CodesSuffix),
                    store.Load(prefix + QuantizedMatrix.ScalesSuffix), store.Contains(zeros) ? store.Load(zeros) : null);
            }
            foreach (var name in store.Names)
            {
                if (quantizedParts.Contains(name))
                {
                    if (QuantizedSpec(name) is { } spec) specs.Add(spec);
                    continue;
                }
                if (name.EndsWith(ArtifactFormat.FactorBSuffix, StringComparison.Ordinal))
                {
                    var partner = name[..^ArtifactFormat.FactorBSuffix.Length] + ArtifactFormat.FactorASuffix;
                    if (!store.Contains(partner)) throw new LrkException(ErrorCodes.BadArtifact, $"{artifactFolder}: '{name}' has no partner '{partner}'");
                    continue;
                }
                if (!name.EndsWith(ArtifactFormat.FactorASuffix, StringComparison.Ordinal))
                {
                    var entry = store.Info(name);
                    var stored = SafeTensorsDtypes.ToScalarType(entry.Dtype)
                        ?? throw new LrkException(ErrorCodes.BadSafetensors, $"{artifactFolder}: tensor '{name}' has dtype {entry.Dtype}, which cannot be exported");
                    specs.Add(new TensorSpec(name, stored, entry.Shape, () => store.Load(name)));
                    continue;
                }
                var linear = name[..^ArtifactFormat.FactorASuffix.Length];
                var bName = linear + ArtifactFormat.FactorBSuffix;
                if (!store.Contains(bName)) throw new LrkException(ErrorCodes.BadArtifact, $"{artifactFolder}: '{name}' has no partner '{bName}'");
                var a = store.Info(name);
                var b = store.Info(bName);
                if (a.Shape.Length != 2 || b.Shape.Length != 2 || a.Shape[1] != b.Shape[0])
                    throw new LrkException(ErrorCodes.BadArtifact, $"{artifactFolder}: factors of '{linear}' have shapes {a.ShapeText} and {b.ShapeText}, which do not multiply");
                var conv1D = ArtifactFormat.IsConv1D(modelConfig.Family, linear);
                long[] shape = conv1D ? [b.Shape[1], a.Shape[0]] : [a.Shape[0], b.Shape[1]];
                var index = merged++;
                specs.Add(new TensorSpec(linear + ArtifactFormat.WeightSuffix, dtype.ToScalarType(), shape, () =>
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    progress?.Report(new ProgressUpdate("export", linear, index, total));
                    var product = matmul(store.Load(name, ScalarType.Float64), store.Load(bName, ScalarType.Float64));
                    return conv1D ? product.t() : product;
                }));
            }
            var missing = quantized.Keys.Where(linear => !dequantized.Contains(linear)).ToList();
            if (missing.Count > 0)
                throw new LrkException(ErrorCodes.BadArtifact, $"{artifactFolder}: config.json lists {missing[0]} as quantized but its codes ({missing[0]}{QuantizedMatrix.CodesSuffix} or {missing[0]}{ArtifactFormat.FactorAPrefix}{QuantizedMatrix.CodesSuffix}) are not in the weights");
            if (merged == 0) throw new LrkException(ErrorCodes.BadArtifact, $"{artifactFolder}: holds no factor or quantized tensors (*{ArtifactFormat.FactorASuffix}, *{QuantizedMatrix.CodesSuffix})");
            var written = SafeTensorsWriter.WriteModel(temp, specs, maxShardBytes: options.MaxShardBytes).Select(Path.GetFileName).ToList();

            ArtifactJson.Write(Path.Combine(temp, ArtifactFormat.ConfigFileName), config);
            foreach (var file in Directory.EnumerateFiles(artifactFolder).Order(StringComparer.Ordinal))
            {
                var fileName = Path.GetFileName(file);
                if (!ArtifactFormat.IsCopiedFile(fileName) && !SourceNotices.IsNoticeFile(fileName)) continue;
                File.Copy(file, Path.Combine(temp, fileName));
                written.Add(fileName);
            }
            written.Add(ArtifactFormat.ConfigFileName);
            var parameters = specs.Sum(s => s.Shape.Aggregate(1L, (p, d) => p * d));
            return new DenseExportResult(Path.GetFullPath(outputFolder), dtype.TorchName(), merged, parameters, written.Order(StringComparer.Ordinal).ToList()!);
        });
    }
}
