namespace LowRank.Testing;

/// <summary>
/// Spellings of the values of a compression request, shared by the tests of every edge that parses them (the
/// MSBuild item, <c>compress</c>'s command line, the cache key): each edge must accept exactly <see cref="Methods"/>,
/// <see cref="FactorDtypes"/>, <see cref="Ratios"/>, <see cref="Seeds"/>, <see cref="Counts"/> and <see cref="Devices"/> and reject the
/// <c>Bad…</c> lists. Each accepted spelling comes
/// with its canonical form: spellings of one thing must give one cache key.
/// </summary>
public static class RequestSpellings
{
    /// <summary>(spelling, canonical key name).</summary>
    public static readonly IReadOnlyList<(string Spelling, string Canonical)> Methods =
    [
        ("svd", "svd"), ("SVD", "svd"), ("fwsvd", "fwsvd"), ("ASVD", "asvd"),
        ("svd-llm", "svd-llm"), ("SVD-LLM", "svd-llm"), ("svd_llm", "svd-llm"), ("svdllm", "svd-llm"),
        ("svd-llm-v2", "svd-llm-v2"), ("SVD_LLM_V2", "svd-llm-v2"), ("adasvd", "adasvd"), ("AdaSVD", "adasvd"),
        ("lc-svd", "lc-svd"), ("lc_svd", "lc-svd"), ("LCSVD", "lc-svd"), ("rtn", "rtn"), ("GPTQ", "gptq"),
    ];

    public static readonly IReadOnlyList<string> BadMethods = ["svd-xl", "lora", "svd-llm-v3", "llm"];

    /// <summary>(spelling, canonical spelling).</summary>
    public static readonly IReadOnlyList<(string Spelling, string Canonical)> FactorDtypes =
    [
        ("fp16", "fp16"), ("half", "fp16"), ("float16", "fp16"), ("f16", "fp16"), ("FP16", "fp16"),
        ("fp32", "fp32"), ("float32", "fp32"), ("float", "fp32"), ("f32", "fp32"),
        ("bf16", "bf16"), ("bfloat16", "bf16"), ("BF16", "bf16"),
        ("int8", "int8"), ("INT4", "int4"), ("int4-g64-zp", "int4-g64-zp"), ("int3-g32", "int3-g32"),
    ];

    public static readonly IReadOnlyList<string> BadFactorDtypes = ["fp8", "float64", "int2", "int4-g100", "int8-zp", "int8-g64", "q4"];

    /// <summary>(spelling, value).</summary>
    public static readonly IReadOnlyList<(string Spelling, double Value)> Ratios =
    [
        ("0.5", 0.5), ("0.2", 0.2), ("1e-1", 0.1), ("0.999", 0.999), (".4", 0.4), ("0.40", 0.4),
    ];

    public static readonly IReadOnlyList<string> BadRatios = ["0", "1", "-0.2", "1.5", "0,5", "abc", "NaN", "Infinity"];

    /// <summary>(spelling, value) of <c>Seed</c> / <c>--seed</c>: 0 to 2147483647.</summary>
    public static readonly IReadOnlyList<(string Spelling, int Value)> Seeds =
    [
        ("0", 0), ("42", 42), ("7", 7), ("+7", 7), ("007", 7), ("2147483647", int.MaxValue),
    ];

    public static readonly IReadOnlyList<string> BadSeeds = ["-1", "-42", "2147483648", "9999999999", "1.5", "1e3", "abc"];

    /// <summary>(spelling, value) of <c>Samples</c> / <c>--samples</c> and <c>SeqLen</c> / <c>--seq-len</c>: at least 1.</summary>
    public static readonly IReadOnlyList<(string Spelling, int Value)> Counts =
    [
        ("1", 1), ("64", 64), ("+64", 64), ("0064", 64), ("2147483647", int.MaxValue),
    ];

    public static readonly IReadOnlyList<string> BadCounts = ["0", "-4", "2147483648", "1.5", "many"];

    /// <summary>(spelling, canonical spelling) of <c>Device</c> / <c>--device</c>: chooses hardware, so never part of the key.</summary>
    public static readonly IReadOnlyList<(string Spelling, string Canonical)> Devices =
    [
        ("auto", "auto"), ("AUTO", "auto"), ("cpu", "cpu"), (" CPU ", "cpu"), ("Cpu", "cpu"),
        ("cuda", "cuda"), ("CUDA", "cuda"), ("gpu", "cuda"), ("GPU", "cuda"),
    ];

    public static readonly IReadOnlyList<string> BadDevices = ["tpu", "cuda:0", "mps", "gpu0", "cuda1", "metal"];
}
