namespace LowRank.Compression;

/// <summary>The compression methods; <see cref="CompressionMethods"/> holds their names.</summary>
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
