namespace LowRank;

/// <summary>
/// The names <c>--method</c> and the MSBuild <c>Method</c> metadata accept (case-insensitive), in one place so the
/// MSBuild task can reject an unknown method at the item's line without starting the tool. The compressor's
/// method registry uses these same names.
/// </summary>
public static class CompressionMethodNames
{
    public static readonly IReadOnlyList<string> All = ["svd", "fwsvd", "asvd", "svd-llm", "svd-llm-v2", "adasvd", "lc-svd", "rtn", "gptq"];

    /// <summary>The canonical (lower-case) name, or an <see cref="ErrorCodes.UnknownMethod"/> error listing the known ones.</summary>
    public static string Normalize(string? name)
    {
        // Like the compressor's parser: any case, dashes optional (svdllm = SVD-LLM).
        var key = (name ?? "").Trim().ToLowerInvariant().Replace("-", "", StringComparison.Ordinal);
        var match = All.FirstOrDefault(n => n.Replace("-", "", StringComparison.Ordinal) == key);
        if (match is not null) return match;
        throw new LrkException(ErrorCodes.UnknownMethod, $"unknown compression method '{name}': use one of {string.Join(", ", All)}");
    }
}
