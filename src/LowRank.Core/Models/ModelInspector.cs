namespace LowRank.Models;

/// <summary>Parameters of one module type across all blocks (every <c>q_proj</c>, every <c>input_layernorm</c>, …).</summary>
public sealed record ParameterGroup(string Name, int Tensors, long Parameters);

/// <summary>How many tensors, parameters and bytes are stored in one dtype.</summary>
public sealed record DtypeCount(string Dtype, int Tensors, long Parameters, long Bytes);

/// <summary>One weight file of the model.</summary>
public sealed record WeightFile(string Name, long Bytes, int Tensors);

/// <summary>The config values that decide the model's shape.</summary>
public sealed record ConfigSummary(
    int HiddenSize, int IntermediateSize, int NumLayers, int NumHeads, int NumKvHeads, int HeadDim, int VocabSize,
    int MaxPositions, double NormEps, double RopeTheta, RopeScaling? RopeScaling, bool TieWordEmbeddings, int? SlidingWindow,
    string HiddenAct, string TorchDtype);

/// <summary>What <c>dotnet lowrank inspect</c> reports about a model folder (or a single safetensors file).</summary>
public sealed record ModelInspection(
    string Folder, string? Architecture, string? Family, ConfigSummary? Config,
    IReadOnlyList<ParameterGroup> Groups, long TotalParameters, int TotalTensors,
    IReadOnlyList<DtypeCount> Dtypes, IReadOnlyList<WeightFile> Files, long TotalBytes,
    IReadOnlyDictionary<string, string> Metadata, bool Sharded);

/// <summary>
/// Summarises a model's weights without loading them (headers only): parameter counts per module type, dtypes,
/// files. Groups are listed in the order their first tensor is stored. Module type is the last name segment before <c>.weight</c>/<c>.bias</c>
/// (<c>model.layers.3.self_attn.q_proj.weight</c> → <c>q_proj</c>); low-rank factors
/// (<c>…q_proj.lowrank_A.weight</c>, <c>…lowrank_B.weight</c>) count under the linear they replace, so a compressed
/// model's <c>q_proj</c> line shows what remains of it. A type name used under different parents (GPT-2's
/// <c>attn.c_proj</c> and <c>mlp.c_proj</c>) is qualified by the parent.
/// </summary>
public static class ModelInspector
{
    private static readonly HashSet<string> ParameterSuffixes = new(StringComparer.Ordinal) { "weight", "bias" };
    private static readonly HashSet<string> FactorSuffixes = new(StringComparer.Ordinal) { "lowrank_A", "lowrank_B" };

    /// <summary>Inspects a model folder, a safetensors file, or an HF hub id in the local cache.</summary>
    public static ModelInspection Inspect(string pathOrId)
    {
        // a weights file is inspected on its own; any other file (config.json, …) stands for its folder
        var isWeightsFile = File.Exists(pathOrId) &&
            (pathOrId.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || pathOrId.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase));
        var weights = isWeightsFile ? Path.GetFullPath(pathOrId) : ModelLocator.Resolve(pathOrId);
        using var store = TensorStore.Open(weights);
        var configPath = Path.Combine(store.Folder, ModelConfigReader.FileName);
        var config = File.Exists(configPath) ? ModelConfigReader.Read(configPath) : null;
        if (config is not null) ModelSizeCheck.Check(config, store.Names, name => store.Info(name).Shape);
        return Inspect(store, config);
    }

    public static ModelInspection Inspect(TensorStore store, ModelConfig? config)
    {
        var entries = store.Entries.ToList();
        var modules = entries.Select(e => ModuleOf(e.Name)).ToList();
        // GPT-2 has attn.c_proj and mlp.c_proj: a type name shared by different parents is qualified by its parent.
        var ambiguous = modules.GroupBy(m => m.Type, StringComparer.Ordinal)
            .Where(g => g.Select(m => m.Parent).Distinct(StringComparer.Ordinal).Count() > 1)
            .Select(g => g.Key).ToHashSet(StringComparer.Ordinal);
        var groups = new Dictionary<string, (int Tensors, long Parameters, int Order)>(StringComparer.Ordinal);
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            var (parent, type) = modules[i];
            var group = ambiguous.Contains(type) && parent is not null ? parent + "." + type : type;
            var current = groups.GetValueOrDefault(group, (0, 0, groups.Count));
            groups[group] = (current.Tensors + 1, current.Parameters + entry.ElementCount, current.Order);
        }
        var dtypes = entries.GroupBy(e => e.Dtype, StringComparer.Ordinal)
            .Select(g => new DtypeCount(g.Key, g.Count(), g.Sum(e => e.ElementCount), g.Sum(e => e.ByteLength)))
            .OrderByDescending(d => d.Parameters).ToList();
        var files = store.Files.Select(f => new WeightFile(
            Path.GetRelativePath(store.Folder, f), new FileInfo(f).Length, entries.Count(e => e.File == f))).ToList();
        return new ModelInspection(
            store.Folder, config?.Architecture, config?.Family.ToString(), config is null ? null : Summary(config),
            groups.OrderBy(g => g.Value.Order).Select(g => new ParameterGroup(g.Key, g.Value.Tensors, g.Value.Parameters)).ToList(),
            entries.Sum(e => e.ElementCount), entries.Count, dtypes, files, files.Sum(f => f.Bytes), store.Metadata, store.IsSharded);
    }

    /// <summary>The module type a tensor belongs to (see the class summary).</summary>
    public static string GroupOf(string tensorName) => ModuleOf(tensorName).Type;

    /// <summary>The module type and the name of its parent module (null at the top), block indices skipped.</summary>
    private static (string? Parent, string Type) ModuleOf(string tensorName)
    {
        var segments = tensorName.Split('.').ToList();
        if (segments.Count > 1 && ParameterSuffixes.Contains(segments[^1])) segments.RemoveAt(segments.Count - 1);
        if (segments.Count > 1 && FactorSuffixes.Contains(segments[^1])) segments.RemoveAt(segments.Count - 1);
        var named = segments.Where(s => s.Length > 0 && !s.All(char.IsAsciiDigit)).ToList();
        return named.Count switch
        {
            0 => (null, tensorName),
            1 => (null, named[0]),
            _ => (named[^2], named[^1]),
        };
    }

    private static ConfigSummary Summary(ModelConfig c) => new(
        c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize, c.MaxPositions,
        c.NormEps, c.RopeTheta, c.RopeScaling, c.TieWordEmbeddings, c.SlidingWindow, c.HiddenAct, c.TorchDtype);
}
