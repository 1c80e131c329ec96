namespace LowRank.Bench;

/// <summary>One sampled linear of the accuracy check (relative Frobenius errors of the product A·B, and of Grams).</summary>
/// <param name="RelativeErrorVsFp64Svd">The pipeline's decomposition of (W, H) against fp64 Cholesky + fp64 torch.linalg.svd of
/// the same (W, H), H being the Gram the pipeline computed: the decomposition's own accuracy.</param>
/// <param name="Fp32SvdRelativeErrorVsFp64Svd">What fp32 torch.linalg.svd (the reference implementation's step) gives for the same (W, H).</param>
/// <param name="GramPath">How the pipeline computed H (<see cref="GramPrecision"/>); the next three: Gram errors against the
/// fp64 Gram of the same activations.</param>
/// <param name="FactorsVsAllFp64">End to end: the pipeline's factors from its own H against fp64 factors from the fp64 Gram.</param>
public sealed record FactorisationAccuracy(
    string Linear,
    long OutFeatures,
    long InFeatures,
    long Rank,
    string Algorithm,
    double RelativeErrorVsFp64Svd,
    double Fp32SvdRelativeErrorVsFp64Svd,
    string GramPath,
    double PipelineGramVsFp64Gram,
    double Fp32GramVsFp64Gram,
    double Tf32GramVsFp64Gram,
    double FactorsVsAllFp64);
