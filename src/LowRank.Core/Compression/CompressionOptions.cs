using System.Text.Json.Serialization;

namespace LowRank.Compression;

/// <summary>Which hidden states feed block i+1 while compressing (and which inputs the statistics of block i see).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<Propagation>))]
public enum Propagation
{
    /// <summary>The original model's hidden states (SVD-LLM's and ASVD's published pipelines profile the original model).</summary>
    Original,
    /// <summary>The hidden states of the model compressed so far, so later blocks are fitted to the inputs they will really see
    /// (AdaSVD, LC-SVD; optional for the others).</summary>
    Compressed,
}

/// <summary>
/// Every knob of a compression run, with its default. The whole record is written into the artifact and the report,
/// so a run can be repeated exactly. Defaults follow the papers where they state one; where they do not, the
/// choice and its reason are given here.
/// </summary>
public sealed record CompressionOptions
{
    /// <summary>The method (CLI/MSBuild name: <see cref="CompressionMethods.ValidNames"/>).</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<CompressionMethod>))]
    public required CompressionMethod Method { get; init; }

    /// <summary>Fraction of the block linears' parameters to REMOVE, in (0, 1). Retention ρ = 1 − Ratio.</summary>
    public required double Ratio { get; init; }

    /// <summary>Seeds everything random in the compression itself (AdaSVD's stack-of-batch shuffle). The calibration
    /// sampler has its own seed, recorded with the calibration protocol.</summary>
    public long Seed { get; init; } = 3;

    /// <summary>Calibration samples per forward pass. Only memory and speed depend on it, not the result (statistics are
    /// summed over all samples), except for FWSVD where <see cref="FisherBatchSize"/> applies.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Null: the method's default (<see cref="DefaultPropagation"/>).</summary>
    public Propagation? Propagation { get; init; }

    /// <summary>How the (weighted/whitened) matrices are decomposed; Auto = fp64 LAPACK SVD on the CPU, fp64 Gram + eigh on CUDA.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<SvdAlgorithm>))]
    public SvdAlgorithm SvdAlgorithm { get; init; } = SvdAlgorithm.Auto;

    /// <summary>Relative ε of the whitening fallbacks: shift ε·tr(H)/n for a non-PD Cholesky, eigenvalue floor ε·λ_max for
    /// eigen whitening. 1e-8 sits below the ~1e-7 relative noise of an fp32-accumulated Gram, so it only acts where H is
    /// numerically singular.</summary>
    public double WhiteningEpsilon { get; init; } = SvdLlm.DefaultWhiteningEpsilon;

    /// <summary>ASVD's α in s_j = (mean|x_j|)^α (paper default 0.5).</summary>
    public double AsvdAlpha { get; init; } = Asvd.DefaultAlpha;

    /// <summary>FWSVD: samples per backward pass. 1 = per-sample gradients, the usual empirical Fisher (a batch mean of
    /// gradients first would cancel sample-level signal).</summary>
    public int FisherBatchSize { get; init; } = 1;

    /// <summary>SVD-LLM V2: use the loss-based heterogeneous allocation (false = uniform ranks with eigen whitening).</summary>
    public bool SvdLlmV2Allocation { get; init; } = true;

    /// <summary>AdaSVD adaComp rounds (each = one U-update and one V-update). Paper: 1 is best at 40–60% CR, more help at 70–80%.</summary>
    public int AdaSvdIterations { get; init; } = AdaSvd.DefaultIterations;

    /// <summary>AdaSVD adaComp target outputs: W·x_orig (default) or W·x_compressed.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<AdaCompTarget>))]
    public AdaCompTarget AdaSvdTarget { get; init; } = AdaCompTarget.Original;

    /// <summary>AdaSVD stack-of-batch bucket size: samples are shuffled (with <see cref="Seed"/>) and averaged in buckets
    /// of this many before their statistics are taken. 1 = every sample on its own (exact; our Gram form needs no
    /// bucketing to fit in memory).</summary>
    public int AdaSvdBucketSize { get; init; } = 1;

    /// <summary>AdaSVD adaCR: use per-block ratios (false = uniform).</summary>
    public bool AdaSvdAdaptiveRatio { get; init; } = true;

    /// <summary>AdaSVD adaCR minimum retention ratio (mrr). Null = target retention − <see cref="AdaSvdRetentionGap"/>
    /// (methods.md: mrr 0.55 for trr 0.6).</summary>
    public double? AdaSvdMinRetention { get; init; }

    /// <summary>trr − mrr when <see cref="AdaSvdMinRetention"/> is not given.</summary>
    public double AdaSvdRetentionGap { get; init; } = AdaSvd.DefaultRetentionGap;

    /// <summary>Relative cut-off of the pseudo-inverses in adaComp (singular values below rtol·σ_max are dropped).</summary>
    public double AdaSvdPinvRtol { get; init; } = AdaSvd.DefaultPinvRtol;

    /// <summary>LC-SVD ridge λ/mean(diag XXᵀ): pulls the refit towards W where calibration data are thin.</summary>
    public double LcSvdRidge { get; init; } = LcSvd.DefaultRidge;

    /// <summary>LC-SVD: run the error-driven per-block rank search (false = uniform ranks).</summary>
    public bool LcSvdRankSearch { get; init; } = true;

    /// <summary>LC-SVD rank search: candidate per-block retentions, as offsets from the target retention.</summary>
    public IReadOnlyList<double> LcSvdSearchOffsets { get; init; } = [-0.2, -0.15, -0.1, -0.05, 0, 0.05, 0.1, 0.15, 0.2];

    /// <summary>LC-SVD: keep SVD-LLM's factorisation of a block when its measured block output error is lower than the refit's.</summary>
    public bool LcSvdGuard { get; init; } = true;

    /// <summary>On CUDA, accumulate the Grams of fp16/bf16 activations with TF32 matmuls (fp32 accumulation). Off by default:
    /// measured on an H100 it moves the factors by ~3e-5 (7B shape) to ~2e-4 (70B shape) relative to fp32 Grams.</summary>
    public bool GramTf32 { get; init; }

    /// <summary>On CUDA, hidden states larger than this stay in host memory and move to the device a batch at a time.</summary>
    public long DeviceHiddenStateBytes { get; init; } = 2L << 30;

    /// <summary>The propagation a method uses unless <see cref="Propagation"/> overrides it.</summary>
    public static Propagation DefaultPropagation(CompressionMethod method) => method switch
    {
        CompressionMethod.AdaSvd or CompressionMethod.LcSvd => Compression.Propagation.Compressed,
        _ => Compression.Propagation.Original,
    };

    [JsonIgnore]
    public Propagation EffectivePropagation => Propagation ?? DefaultPropagation(Method);

    /// <summary>Throws <see cref="ErrorCodes.BadRatio"/> / <see cref="ErrorCodes.BadMethodOption"/> for values no run can use.</summary>
    public void Validate()
    {
        RatioMath.ValidateRatio(Ratio);
        static void Require(bool ok, string message)
        {
            if (!ok) throw new LrkException(ErrorCodes.BadMethodOption, message);
        }
        Require(BatchSize >= 1, $"batch size must be at least 1 (got {BatchSize})");
        Require(FisherBatchSize >= 1, $"FWSVD Fisher batch size must be at least 1 (got {FisherBatchSize})");
        Require(AsvdAlpha > 0 && AsvdAlpha <= 2, $"ASVD alpha must be in (0, 2] (got {AsvdAlpha})");
        Require(WhiteningEpsilon > 0 && WhiteningEpsilon < 1, $"whitening epsilon must be in (0, 1) (got {WhiteningEpsilon})");
        Require(AdaSvdIterations >= 0 && AdaSvdIterations <= 100, $"AdaSVD iterations must be in [0, 100] (got {AdaSvdIterations})");
        Require(AdaSvdBucketSize >= 1, $"AdaSVD bucket size must be at least 1 (got {AdaSvdBucketSize})");
        Require(AdaSvdRetentionGap >= 0 && AdaSvdRetentionGap < 1, $"AdaSVD retention gap must be in [0, 1) (got {AdaSvdRetentionGap})");
        if (AdaSvdMinRetention is { } mrr)
            Require(mrr > 0 && mrr <= 1 - Ratio, $"AdaSVD minimum retention must be in (0, {1 - Ratio}] (got {mrr})");
        Require(AdaSvdPinvRtol >= 0 && AdaSvdPinvRtol < 1, $"AdaSVD pinv rtol must be in [0, 1) (got {AdaSvdPinvRtol})");
        Require(LcSvdRidge >= 0, $"LC-SVD ridge must be non-negative (got {LcSvdRidge})");
        Require(LcSvdSearchOffsets.Count > 0 && LcSvdSearchOffsets.Contains(0), "LC-SVD search offsets must include 0 (the uniform allocation)");
        Require(DeviceHiddenStateBytes >= 0, "device hidden-state limit must be non-negative");
    }
}
