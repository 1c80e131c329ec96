namespace LowRank.Compression;

/// <summary>Every default of a compression request, in one place (the CLI's option defaults, the engine's and the
/// calibration sampler's). A request that leaves a value unset means "this default", which the tool version in the
/// cache key pins.</summary>
public static class CompressionDefaults
{
    /// <summary>Seed of the calibration sampler (and of the CLI's AdaSVD shuffle).</summary>
    public const int Seed = 42;

    /// <summary>Calibration samples N (the papers use 256; SVD-LLM and ASVD use 256 × 2048 of WikiText-2 or C4).</summary>
    public const int Samples = 256;

    /// <summary>Calibration samples per forward pass (memory only; the result does not depend on it).</summary>
    public const int BatchSize = 8;

    /// <summary>The MSBuild item's method when it names none (plain SVD needs no calibration text): the
    /// <c>CompressedModel</c> default in LowRank.Build.Tasks.props, which a test holds to this value.</summary>
    public const CompressionMethod Method = CompressionMethod.Svd;

    /// <summary>The MSBuild item's ratio when it names none (<see cref="CompressionRatio"/>): the <c>CompressedModel</c>
    /// default in LowRank.Build.Tasks.props, which a test holds to this value. The CLI has none: <c>--ratio</c> is required.</summary>
    public const double Ratio = 0.2;
}
