namespace LowRank.Compression;

/// <summary>The compression methods, by the names the CLI and MSBuild accept (see <see cref="CompressionMethods"/>).</summary>
public enum CompressionMethod
{
    /// <summary>Plain truncated SVD of each weight (no calibration data).</summary>
    Svd,
    /// <summary>Fisher-weighted SVD (Hsu et al., 2022): input columns weighted by the empirical Fisher.</summary>
    Fwsvd,
    /// <summary>Activation-aware SVD (Yuan et al., 2023): input channels scaled by their mean absolute activation.</summary>
    Asvd,
    /// <summary>SVD-LLM (Wang et al., 2024): truncation-aware whitening with the Cholesky factor of the input Gram.</summary>
    SvdLlm,
    /// <summary>SVD-LLM V2 (Wang et al., 2025): eigendecomposition whitening + loss-based heterogeneous rank allocation.</summary>
    SvdLlmV2,
    /// <summary>AdaSVD (Li et al., 2025): adaComp alternating refit against the original outputs + adaCR block-wise ratios.</summary>
    AdaSvd,
    /// <summary>LC-SVD: block-collaborative refit minimising the block output error + error-driven per-block rank search.</summary>
    LcSvd,
    /// <summary>Quantization-only baseline: every block linear's weight rounded to nearest on its int8/int4/int3 grid.</summary>
    Rtn,
    /// <summary>Quantization-only baseline: GPTQ (Frantar et al., 2022) on every block linear's weight.</summary>
    Gptq,
}

public static class CompressionMethods
{
    private static readonly (CompressionMethod Method, string Name)[] Names =
    [
        (CompressionMethod.Svd, "SVD"),
        (CompressionMethod.Fwsvd, "FWSVD"),
        (CompressionMethod.Asvd, "ASVD"),
        (CompressionMethod.SvdLlm, "SVD-LLM"),
        (CompressionMethod.SvdLlmV2, "SVD-LLM-V2"),
        (CompressionMethod.AdaSvd, "AdaSVD"),
        (CompressionMethod.LcSvd, "LC-SVD"),
        (CompressionMethod.Rtn, "RTN"),
        (CompressionMethod.Gptq, "GPTQ"),
    ];

    /// <summary>True for the quantization-only baselines (rtn, gptq): they keep every weight dense, take <c>--bits</c>
    /// instead of <c>--ratio</c>.</summary>
    public static bool IsQuantizationOnly(this CompressionMethod method) => method is CompressionMethod.Rtn or CompressionMethod.Gptq;

    /// <summary>Every valid name, in the order the docs list them.</summary>
    public static IReadOnlyList<string> ValidNames { get; } = Names.Select(n => n.Name).ToArray();

    /// <summary>The low-rank methods (every method but the quantization-only baselines), in the order the docs list them.</summary>
    public static IReadOnlyList<CompressionMethod> LowRank { get; } = Names.Select(n => n.Method).Where(m => !m.IsQuantizationOnly()).ToArray();

    public static string Name(this CompressionMethod method) => Names.First(n => n.Method == method).Name;

    /// <summary>Parses a method name case-insensitively; also accepts the names without dashes (svdllm, lcsvd).</summary>
    public static CompressionMethod Parse(string? text)
    {
        var wanted = Normalize(text ?? "");
        foreach (var (method, name) in Names)
        {
            if (Normalize(name) == wanted) return method;
        }
        throw new LrkException(ErrorCodes.UnknownMethod,
            $"unknown compression method '{text}': valid methods are {string.Join(", ", ValidNames)}");
    }

    private static string Normalize(string text) =>
        new string(text.Where(char.IsLetterOrDigit).ToArray()).ToUpperInvariant();
}
