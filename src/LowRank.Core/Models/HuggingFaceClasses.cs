namespace LowRank.Models;

/// <summary>
/// One supported family's names in Hugging Face transformers: the stock <c>model_type</c>, architecture and config class,
/// and the names a compressed artifact carries instead (<c>lowrank_llama</c>, <c>LowRankLlamaForCausalLM</c>,
/// <c>LowRankLlamaConfig</c>), which no stock transformers class claims, so that only the artifact's own
/// <c>modeling_lowrank.py</c> (through <c>auto_map</c> and <c>trust_remote_code=True</c>) can load it.
/// </summary>
public sealed record HuggingFaceClasses(ModelFamily Family, string ModelType, string Architecture, string ConfigClass)
{
    public const string LowRankPrefix = "LowRank";
    public const string LowRankModelTypePrefix = "lowrank_";

    public string LowRankModelType => LowRankModelTypePrefix + ModelType;
    public string LowRankArchitecture => LowRankPrefix + Architecture;
    public string LowRankConfigClass => LowRankPrefix + ConfigClass;

    public static IReadOnlyList<HuggingFaceClasses> All { get; } =
    [
        new(ModelFamily.Llama, "llama", "LlamaForCausalLM", "LlamaConfig"),
        new(ModelFamily.Mistral, "mistral", "MistralForCausalLM", "MistralConfig"),
        new(ModelFamily.Qwen2, "qwen2", "Qwen2ForCausalLM", "Qwen2Config"),
        new(ModelFamily.Opt, "opt", "OPTForCausalLM", "OPTConfig"),
        new(ModelFamily.Gpt2, "gpt2", "GPT2LMHeadModel", "GPT2Config"),
    ];

    public static HuggingFaceClasses Of(ModelFamily family) => All.Single(c => c.Family == family);
}
