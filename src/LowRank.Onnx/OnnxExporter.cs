using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LowRank.Artifacts;
using LowRank.Models;
using LowRank.Onnx.Graphs;

namespace LowRank.Onnx;

public sealed record OnnxExportOptions
{
    /// <summary>Activations, weights and KV cache: fp32 (every provider, the CPU included) or fp16 (GPU providers).</summary>
    public OnnxDtype Dtype { get; init; } = OnnxDtype.Float;

    public ExternalData ExternalData { get; init; } = ExternalData.Auto;

    public bool Overwrite { get; init; }
}

/// <summary>What an export wrote.</summary>
public sealed record OnnxExportResult(
    string Folder,
    string Architecture,
    string Dtype,
    IReadOnlyList<ExportedLinear> Linears,
    long WeightBytes,
    bool ExternalData,
    string? GenAiModelType,
    IReadOnlyList<string> Files)
{
    public int FactorizedLinears => Linears.Count(l => l.IsFactorized);
}

/// <summary>
/// <c>dotnet lowrank export MODEL --onnx --out DIR</c>: a dense model or a compressed artifact as <c>model.onnx</c>
/// (+ <c>model.onnx.data</c> for large weights), with the source's <c>config.json</c>, tokenizer files and licence/notice files, and for the
/// LLaMA, Mistral and Qwen2 families <c>genai_config.json</c> so ONNX Runtime GenAI loads the folder as it is.
/// Factorised linears stay two MatMuls (<see cref="DecoderGraph"/>). Reads the safetensors directly: no libtorch.
/// The folder is assembled under a temporary name and renamed into place.
/// </summary>
public static class OnnxExporter
{
    public const string ModelFileName = "model.onnx";

    public static OnnxExportResult Export(string modelPathOrId, string outputFolder, OnnxExportOptions? options = null,
        IProgress<ProgressUpdate>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new OnnxExportOptions();
        var folder = ModelLocator.Resolve(modelPathOrId);
        ArtifactWriter.CheckOutput(outputFolder, folder, options.Overwrite);
        var config = ModelConfigReader.Read(folder);
        var section = LowRankSection.Read(folder);
        using var store = TensorStore.Open(folder);
        ModelSizeCheck.Check(config, store.Names, name => store.Info(name).Shape);
        var graph = CreateGraph(config, new SafeTensorsExportWeights(store), options.Dtype);
        progress?.Report(new ProgressUpdate("export", $"building the {config.Architecture} graph"));
        graph.Build();
        var genAiType = GenAiConfig.ModelType(config.Family);
        return ArtifactFiles.PublishFolder(outputFolder, options.Overwrite, temp =>
        {
            progress?.Report(new ProgressUpdate("export", $"writing {ModelFileName}"));
            var written = OnnxModelWriter.Write(graph.Graph, temp, ModelFileName, options.ExternalData, Metadata(folder, section, graph), cancellationToken);
            var files = new List<string>(written.Files);
            foreach (var file in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(file);
                if (name != ArtifactFormat.ConfigFileName && !ArtifactFormat.IsCopiedFile(name) && !SourceNotices.IsNoticeFile(name)) continue;
                File.Copy(file, Path.Combine(temp, name));
                files.Add(name);
            }
            if (genAiType is not null)
            {
                File.WriteAllText(Path.Combine(temp, GenAiConfig.FileName), GenAiConfig.Create(graph, ModelFileName).ToJsonString(Indented) + "\n");
                files.Add(GenAiConfig.FileName);
            }
            return new OnnxExportResult(Path.GetFullPath(outputFolder), config.Architecture, options.Dtype.ShortName(), graph.Linears,
                written.InitializerBytes, written.External, genAiType, files.Order(StringComparer.Ordinal).ToList());
        });
    }

    /// <summary>The graph builder of <paramref name="config"/>'s family.</summary>
    public static DecoderGraph CreateGraph(ModelConfig config, IExportWeights weights, OnnxDtype dtype) => config.Family switch
    {
        ModelFamily.Llama or ModelFamily.Mistral or ModelFamily.Qwen2 => new LlamaGraph(config, weights, dtype),
        ModelFamily.Opt => new OptGraph(config, weights, dtype),
        ModelFamily.Gpt2 => new Gpt2Graph(config, weights, dtype),
        _ => throw new LrkException(ErrorCodes.UnsupportedArchitecture, $"no ONNX export for the {config.Family} family"),
    };

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Provenance in the model's metadata_props: the source, the method and ratio of an artifact, and every
    /// factorised linear's rank.</summary>
    private static Dictionary<string, string> Metadata(string folder, LowRankSection? section, DecoderGraph graph)
    {
        var ranks = new JsonObject();
        foreach (var linear in graph.Linears.Where(l => l.IsFactorized)) ranks[linear.Name] = linear.Rank;
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["lowrank.source"] = Path.GetFileName(Path.TrimEndingDirectorySeparator(folder)),
            ["lowrank.architecture"] = graph.Config.Architecture,
            ["lowrank.dtype"] = graph.Dtype.ShortName(),
            ["lowrank.truncation_ranks"] = ranks.ToJsonString(),
        };
        var quantized = new JsonObject();
        foreach (var linear in graph.Linears.Where(l => l.Format is not null)) quantized[linear.Name] = linear.Format;
        if (quantized.Count > 0) metadata["lowrank.quantized_linears"] = quantized.ToJsonString();
        if (section is not null)
        {
            metadata["lowrank.method"] = section.Method;
            metadata["lowrank.achieved_ratio"] = section.AchievedRatio.ToString("R", CultureInfo.InvariantCulture);
            metadata["lowrank.factor_dtype"] = section.FactorDtype.ShortName();
        }
        return metadata;
    }
}
