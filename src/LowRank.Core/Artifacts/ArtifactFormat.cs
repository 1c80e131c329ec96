using System.Text.RegularExpressions;

namespace LowRank.Artifacts;

/// <summary>
/// The names that make a folder a compressed artifact (README, "The compressed artifact"). An artifact is an
/// ordinary Hugging Face model folder plus a <c>lowrank</c> section in <c>config.json</c>, factor tensors named
/// <c>&lt;linear&gt;.lowrank_A.weight</c> [out, k] and <c>&lt;linear&gt;.lowrank_B.weight</c> [k, in] in place of
/// <c>&lt;linear&gt;.weight</c>, and <c>lowrank-manifest.json</c>.
/// </summary>
public static partial class ArtifactFormat
{
    /// <summary>The newest format this tool reads. Bumped when a reader of the previous version would misread an artifact
    /// of the new one: version 2 adds quantized tensors (the section's <c>quantization</c> object).</summary>
    public const int Version = 2;

    /// <summary>The version written for an artifact without quantized tensors, which every reader of version 1 reads.</summary>
    public const int PlainVersion = 1;

    public const string ManifestFileName = "lowrank-manifest.json";
    public const string ConfigFileName = "config.json";
    public const string LowRankSectionName = "lowrank";
    public const string ManifestFormatName = "lowrank-artifact";

    /// <summary>A [out, k]: <c>W ≈ A·B</c>, so <c>y = A (B x) + b</c>.</summary>
    public const string FactorASuffix = ".lowrank_A.weight";

    /// <summary>B [k, in].</summary>
    public const string FactorBSuffix = ".lowrank_B.weight";

    /// <summary>Prefixes of quantized factors (+ <c>.qweight</c>, <c>.scales</c>, <c>.qzeros</c>).</summary>
    public const string FactorAPrefix = ".lowrank_A";
    public const string FactorBPrefix = ".lowrank_B";

    public const string WeightSuffix = ".weight";

    /// <summary>
    /// Files copied unchanged from the source model: tokenizers of every supported kind and the generation defaults.
    /// Licence and notice files come along too (<see cref="SourceNotices"/>); weights, <c>config.json</c> and anything
    /// else (pickled checkpoints, other code) are not copied.
    /// </summary>
    public static readonly IReadOnlyList<string> CopiedFileNames =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.model",
        "vocab.json", "merges.txt", "vocab.txt", "chat_template.jinja", "chat_template.json", "generation_config.json",
        "tokenizer.bin",
    ];

    /// <summary>True for a file the artifact takes over from its source (see <see cref="CopiedFileNames"/>);
    /// llama2.c tokenizers (<c>tok512.bin</c>, <c>tokenizer.bin</c>) included.</summary>
    public static bool IsCopiedFile(string fileName) =>
        CopiedFileNames.Contains(fileName, StringComparer.Ordinal) || Llama2cTokenizerName().IsMatch(fileName);

    /// <summary>True for a file the writer makes itself (config, manifest, weights, the model card and the transformers
    /// classes), which neither a copied file nor extra content may replace.</summary>
    public static bool IsWrittenByWriter(string fileName) =>
        fileName is ConfigFileName or ManifestFileName or ModelCard.FileName or HuggingFaceRemoteCode.ModelingFileName || IsWeightFile(fileName);

    /// <summary>True for the files that hold a model's weights in HF layout (single file, shards, shard index).</summary>
    public static bool IsWeightFile(string fileName) =>
        fileName == "model.safetensors" || fileName == "model.safetensors.index.json" || ShardName().IsMatch(fileName);

    /// <summary>GPT-2 keeps its block linears as Conv1D, whose weight is stored [in, out]; every other linear is [out, in].</summary>
    public static bool IsConv1D(Models.ModelFamily family, string linearName) =>
        family == Models.ModelFamily.Gpt2 && Gpt2BlockLinear().IsMatch(linearName);

    [GeneratedRegex(@"^tok[0-9]+\.bin$")]
    private static partial Regex Llama2cTokenizerName();

    [GeneratedRegex(@"^model-[0-9]+-of-[0-9]+\.safetensors$")]
    private static partial Regex ShardName();

    [GeneratedRegex(@"(^|\.)h\.[0-9]+\.(attn|mlp)\.c_(attn|proj|fc)$")]
    private static partial Regex Gpt2BlockLinear();
}
