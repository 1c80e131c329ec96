namespace LowRank.Compression;

/// <summary>One row of the method table: the enum value, the key name (lower case: what the cache key, the MSBuild
/// metadata and <c>--method</c> carry after parsing) and the display name (reports, help, messages).</summary>
public sealed record CompressionMethodName(CompressionMethod Method, string Key, string DisplayName);

/// <summary>
/// The one method table. <see cref="Parse"/> is the only name parser: the MSBuild task, the CLI, the cache key and
/// the engine all go through it. Case and every character but letters and digits are ignored, so <c>svd-llm</c>,
/// <c>SVD_LLM</c>, <c>svdllm</c> and <c>SVD-LLM</c> are one method.
/// </summary>
public static class CompressionMethods
{
    /// <summary>Every method, in the order the docs list them.</summary>
    public static IReadOnlyList<CompressionMethodName> Table { get; } =
    [
        new(CompressionMethod.Svd, "svd", "SVD"),
        new(CompressionMethod.Fwsvd, "fwsvd", "FWSVD"),
        new(CompressionMethod.Asvd, "asvd", "ASVD"),
        new(CompressionMethod.SvdLlm, "svd-llm", "SVD-LLM"),
        new(CompressionMethod.SvdLlmV2, "svd-llm-v2", "SVD-LLM-V2"),
        new(CompressionMethod.AdaSvd, "adasvd", "AdaSVD"),
        new(CompressionMethod.LcSvd, "lc-svd", "LC-SVD"),
        new(CompressionMethod.Rtn, "rtn", "RTN"),
        new(CompressionMethod.Gptq, "gptq", "GPTQ"),
    ];

    /// <summary>True for the quantization-only baselines (rtn, gptq): they keep every weight dense, take <c>--bits</c>
    /// instead of <c>--ratio</c>.</summary>
    public static bool IsQuantizationOnly(this CompressionMethod method) => method is CompressionMethod.Rtn or CompressionMethod.Gptq;

    /// <summary>Every display name, in the order the docs list them.</summary>
    public static IReadOnlyList<string> ValidNames { get; } = Table.Select(n => n.DisplayName).ToArray();

    /// <summary>Every key name (lower case), in the order the docs list them.</summary>
    public static IReadOnlyList<string> Keys { get; } = Table.Select(n => n.Key).ToArray();

    /// <summary>The low-rank methods (every method but the quantization-only baselines), in the order the docs list them.</summary>
    public static IReadOnlyList<CompressionMethod> LowRank { get; } = Table.Select(n => n.Method).Where(m => !m.IsQuantizationOnly()).ToArray();

    /// <summary>The display name: SVD-LLM, AdaSVD, …</summary>
    public static string Name(this CompressionMethod method) => Row(method).DisplayName;

    /// <summary>The key name: svd-llm, adasvd, … (what cache keys and resolved MSBuild items carry).</summary>
    public static string Key(this CompressionMethod method) => Row(method).Key;

    /// <summary>Parses a method name (any case; separators ignored), or fails with <see cref="ErrorCodes.UnknownMethod"/>.</summary>
    public static CompressionMethod Parse(string? text) => TryParse(text, out var method)
        ? method
        : throw new LrkException(ErrorCodes.UnknownMethod,
            $"unknown compression method '{text}': valid methods are {string.Join(", ", ValidNames)}");

    public static bool TryParse(string? text, out CompressionMethod method)
    {
        var wanted = Fold(text ?? "");
        foreach (var row in Table)
        {
            if (wanted.Length > 0 && Fold(row.Key) == wanted)
            {
                method = row.Method;
                return true;
            }
        }
        method = default;
        return false;
    }

    private static CompressionMethodName Row(CompressionMethod method) => Table.First(n => n.Method == method);

    private static string Fold(string text) => new string(text.Where(char.IsLetterOrDigit).ToArray()).ToLowerInvariant();
}
