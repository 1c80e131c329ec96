using System.Text.Json.Nodes;
using LowRank.Models;

namespace LowRank.Artifacts;

/// <summary>
/// What makes Hugging Face transformers load a compressed artifact right or not at all (README, "Loading an artifact
/// from Python"): the artifact's <c>config.json</c> names its own <c>model_type</c> (<c>lowrank_llama</c>) and
/// architecture (<c>LowRankLlamaForCausalLM</c>), and an <c>auto_map</c> pointing at <c>modeling_lowrank.py</c>, which
/// the writer puts into the artifact. With <c>trust_remote_code=True</c> those classes build the model with two
/// <c>nn.Linear</c> of rank k per factorised linear and load every tensor; without it transformers refuses the unknown
/// model_type instead of random-initialising the missing <c>.weight</c>s. The stock names are kept in the
/// <c>lowrank</c> section (<c>base_model_type</c>, <c>base_architectures</c>) and restored by a dense export.
/// </summary>
public static class HuggingFaceRemoteCode
{
    public const string ModelingFileName = "modeling_lowrank.py";
    private const string ModelingModule = "modeling_lowrank";

    public const string BaseModelTypeKey = "base_model_type";
    public const string BaseArchitecturesKey = "base_architectures";

    /// <summary>The text of <see cref="ModelingFileName"/> (src/LowRank.Core/Artifacts/HuggingFace/modeling_lowrank.py).</summary>
    public static string ModelingSource { get; } = ReadModelingSource();

    /// <summary>The <c>auto_map</c> of an artifact of <paramref name="family"/>.</summary>
    public static JsonObject AutoMap(ModelFamily family)
    {
        var classes = HuggingFaceClasses.Of(family);
        return new JsonObject
        {
            ["AutoConfig"] = $"{ModelingModule}.{classes.LowRankConfigClass}",
            ["AutoModelForCausalLM"] = $"{ModelingModule}.{classes.LowRankArchitecture}",
        };
    }

    /// <summary>Turns a source config (with its <c>lowrank</c> section already in place) into an artifact's: the stock
    /// model_type and architectures move into the section, the artifact's own names and the auto_map take their place.</summary>
    public static void Apply(JsonObject config, ModelFamily family)
    {
        var classes = HuggingFaceClasses.Of(family);
        var section = config[ArtifactFormat.LowRankSectionName] as JsonObject
            ?? throw new InvalidOperationException("the lowrank section must be written before the Hugging Face names");
        var modelType = config["model_type"] is JsonValue t && t.TryGetValue<string>(out var type) && !type.StartsWith(HuggingFaceClasses.LowRankModelTypePrefix, StringComparison.Ordinal)
            ? type : classes.ModelType;
        var architectures = config["architectures"] is JsonArray list && list.Count > 0 && list.All(a => a is JsonValue v && v.TryGetValue<string>(out var name) && !name.StartsWith(HuggingFaceClasses.LowRankPrefix, StringComparison.Ordinal))
            ? (JsonArray)list.DeepClone() : new JsonArray(classes.Architecture);
        section[BaseModelTypeKey] = modelType;
        section[BaseArchitecturesKey] = architectures;
        config["model_type"] = classes.LowRankModelType;
        config["architectures"] = new JsonArray(classes.LowRankArchitecture);
        config["auto_map"] = AutoMap(family);
        // The section last, as transformers writes unknown keys after its own.
        config.Remove(ArtifactFormat.LowRankSectionName);
        config[ArtifactFormat.LowRankSectionName] = section;
    }

    /// <summary>The reverse of <see cref="Apply"/> for a dense export: the stock names back (from the section, else the
    /// family's), no auto_map. The caller removes the section.</summary>
    public static void Revert(JsonObject config, ModelFamily family)
    {
        var classes = HuggingFaceClasses.Of(family);
        var section = config[ArtifactFormat.LowRankSectionName] as JsonObject;
        if (config["model_type"] is JsonValue t && t.TryGetValue<string>(out var type) && type.StartsWith(HuggingFaceClasses.LowRankModelTypePrefix, StringComparison.Ordinal))
            config["model_type"] = section?[BaseModelTypeKey] is JsonValue b && b.TryGetValue<string>(out var baseType) ? baseType : classes.ModelType;
        if (config["architectures"] is JsonArray list && list.Any(a => a is JsonValue v && v.TryGetValue<string>(out var name) && name.StartsWith(HuggingFaceClasses.LowRankPrefix, StringComparison.Ordinal)))
            config["architectures"] = section?[BaseArchitecturesKey] is JsonArray baseList ? baseList.DeepClone() : new JsonArray(classes.Architecture);
        if (config["auto_map"] is JsonObject map && map.Select(p => p.Value).All(v => v is JsonValue s && s.TryGetValue<string>(out var target) && target.StartsWith(ModelingModule + ".", StringComparison.Ordinal)))
            config.Remove("auto_map");
    }

    private static string ReadModelingSource()
    {
        using var stream = typeof(HuggingFaceRemoteCode).Assembly.GetManifestResourceStream(ModelingFileName)
            ?? throw new InvalidOperationException($"{ModelingFileName} is not embedded in {typeof(HuggingFaceRemoteCode).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
