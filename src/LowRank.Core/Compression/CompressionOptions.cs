using System.Text.Json.Serialization;

namespace LowRank.Compression;

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

    /// <summary>Fraction of the block linears' parameters to REMOVE, in (0, 1). Retention ρ = 1 − Ratio. 0 for the
    /// quantization-only methods (rtn, gptq), which remove none.</summary>
    public required double Ratio { get; init; }

    /// <summary>rtn/gptq: bits per stored weight, 8 (per output channel), 4 or 3 (group-wise, <see cref="GroupSize"/>);
    /// null for the low-rank methods (their factors' storage is <c>--factor-dtype</c>).</summary>
    public int? Bits { get; init; }

    /// <summary>Input columns per scale of the 4- and 3-bit formats: the rtn/gptq weights, and quantized factors whose
    /// <c>--factor-dtype</c> names no group (<c>int4</c>). 32, 64 or 128 (GPTQ's and ONNX Runtime's usual 128).</summary>
    public int GroupSize { get; init; } = Quantization.QuantFormat.DefaultGroupSize;

    /// <summary>Store a zero point per group (asymmetric grid) for the 4- and 3-bit formats, unless a
    /// <c>--factor-dtype</c> spelling names <c>-zp</c> itself. On by default: the GPTQ paper's setting for weights, and
    /// measured better for SVD factors too (BENCHMARKS.md, llama-moby CR 0.2: int4-g32 factors 27.01 → 26.46 PPL).</summary>
    public bool ZeroPoints { get; init; } = true;

    /// <summary>How quantized factors (<c>--factor-dtype int8|int4|int3</c>) are made: GPTQ with the factor refit
    /// (<see cref="LowRank.Quantization.FactorQuantizer"/>) or round to nearest.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<Quantization.Quantizer>))]
    public Quantization.Quantizer FactorQuantizer { get; init; } = Quantization.Quantizer.Gptq;

    /// <summary>SVD-LLM: instead of a ratio, a budget in bits per original weight of the block linears (codes, scales and
    /// zero points counted) within which every linear's rank and storage format are chosen together
    /// (<see cref="BitAllocation"/>); the factors are then quantized as chosen.</summary>
    public double? TargetBits { get; init; }

    /// <summary>GPTQ's damping λ/mean(diag H) (the reference's percdamp).</summary>
    public double GptqDamping { get; init; } = 0.01;

    /// <summary>GPTQ's lazy-batch width B (columns).</summary>
    public int GptqBlockSize { get; init; } = 128;

    /// <summary>Seeds everything random in the compression itself (AdaSVD's stack-of-batch shuffle). The calibration
    /// sampler has its own seed, recorded with the calibration protocol.</summary>
    public long Seed { get; init; } = 3;

    /// <summary>Calibration samples per forward pass. Only memory and speed depend on it, not the result (statistics are
    /// summed over all samples), except for FWSVD where <see cref="FisherBatchSize"/> applies.</summary>
    public int BatchSize { get; init; } = CompressionDefaults.BatchSize;

    /// <summary>Every planned rank is rounded down to a multiple of this (never below one multiple): fp16/bf16 tensor-core
    /// GEMMs want dimensions that are multiples of 8, and ranks such as 1492 (LLaMA-7B's MLP at CR 0.5) are not.
    /// 1 (default) keeps the exact rank of the requested ratio; 8 removes at most 7 ranks per linear, so the achieved
    /// ratio is slightly above the requested one (the report gives it).</summary>
    public int RankMultiple { get; init; } = 1;

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

    /// <summary>AdaSVD adaComp target outputs: W·x_compressed (default) or W·x_orig. Measured on stories260K (BENCHMARKS.md):
    /// fitting W·x_orig from the compressed inputs learns the shrunken conditional mean once the inputs have drifted
    /// (CR 0.6: PPL 955 vs 143), so the default fits each layer to the inputs it will really see.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<AdaCompTarget>))]
    public AdaCompTarget AdaSvdTarget { get; init; } = AdaCompTarget.Compressed;

    /// <summary>AdaSVD: the Gram that whitens adaComp's starting truncation — the original model's inputs (default) or the
    /// compressed model's.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<AdaCompWhitening>))]
    public AdaCompWhitening AdaSvdWhitening { get; init; } = AdaCompWhitening.Original;

    /// <summary>AdaSVD stack-of-batch bucket size: samples are shuffled (with <see cref="Seed"/>) and averaged in buckets
    /// of this many before their statistics are taken. 1 = every sample on its own (exact; our Gram form needs no
    /// bucketing to fit in memory).</summary>
    public int AdaSvdBucketSize { get; init; } = 1;

    /// <summary>AdaSVD adaCR: use per-block ratios (false = uniform).</summary>
    public bool AdaSvdAdaptiveRatio { get; init; } = true;

    /// <summary>AdaSVD adaCR: calibration samples (the first ones; the sampler's order is random) whose hidden states measure
    /// block importance; 0 = all. The importance is a mean cosine over every token of these samples (64 × 2048 tokens for a
    /// 7B calibration set), and the profile pass over the whole model costs a forward pass per sample, so a subset keeps it
    /// a small part of the run.</summary>
    public int AdaSvdImportanceSamples { get; init; } = AdaSvd.DefaultImportanceSamples;

    /// <summary>AdaSVD: how the original model's input Grams (the whitening of adaComp's start) are gathered. It changes
    /// time and memory, never the result.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<AdaSvdOriginalPass>))]
    public AdaSvdOriginalPass AdaSvdOriginalPass { get; init; } = AdaSvdOriginalPass.Auto;

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

    /// <summary>How the per-batch Gram products of fp16/bf16 activations are computed on CUDA (fp32 activations and the CPU
    /// always use fp32 FMA). Auto = <see cref="GramPrecision.TensorCores"/> where the native kernels load, else TF32.
    /// fp32 FMA is the accurate, slow reference; the tensor cores are about an order of magnitude faster at a few times its
    /// error when summed over chunks of tokens (<see cref="LowRank.Torch.CudaNative.DefaultChunkTokens"/>; their running
    /// sums drop bits, so one long GEMM is worse); TF32 (one GEMM per batch) is slower than the tensor cores and less
    /// accurate than their chunked sums (BENCHMARKS.md, "Chunked Gram").</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<GramPrecision>))]
    public GramPrecision GramPrecision { get; init; } = GramPrecision.Auto;

    /// <summary>Whether block i's decomposition runs beside block i+1's profiling (SVD-LLM with the original-model stream):
    /// on CUDA on a second stream. It changes the time, never the result (the same kernels see the same inputs).</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<DecompositionOverlap>))]
    public DecompositionOverlap DecompositionOverlap { get; init; } = DecompositionOverlap.Auto;

    /// <summary>On CUDA, hidden states larger than this stay in host memory and move to the device a batch at a time.
    /// Null = 40% of the GPU's memory (2 GiB where it cannot be read): the calibration stream of a 7B model at
    /// 256 × 2048 tokens is 4.3 GB in fp16, and moving it through host memory costs two copies of it per block. AdaSVD
    /// also keeps a block's linear-group inputs under this limit (7B: up to 4.3 + 11.5 GB beside the stream), which is
    /// why the default is 40% and not a quarter (an 80 GB GPU then holds them all).</summary>
    public long? DeviceHiddenStateBytes { get; init; }

    /// <summary>The hidden-state limit in effect on <paramref name="device"/>.</summary>
    public long DeviceHiddenStateLimit(TorchSharp.torch.Device device) => DeviceHiddenStateBytes
        ?? (LowRank.Torch.CudaNative.TotalMemoryBytes(device) is { } total ? total / 5 * 2 : 2L << 30);

    /// <summary>The propagation a method uses unless <see cref="Propagation"/> overrides it.</summary>
    public static Propagation DefaultPropagation(CompressionMethod method) => method switch
    {
        CompressionMethod.AdaSvd or CompressionMethod.LcSvd or CompressionMethod.Rtn or CompressionMethod.Gptq => Compression.Propagation.Compressed,
        _ => Compression.Propagation.Original,
    };

    [JsonIgnore]
    public Propagation EffectivePropagation => Propagation ?? DefaultPropagation(Method);

    /// <summary>rtn/gptq: the format of the weights (<see cref="Bits"/>, <see cref="GroupSize"/>, <see cref="ZeroPoints"/>,
    /// by default on).</summary>
    [JsonIgnore]
    public Quantization.QuantFormat WeightFormat => Quantization.QuantFormat.ForBits(
        Bits ?? throw new InvalidOperationException($"{Method.Name()} has no --bits"), GroupSize, ZeroPoints);

    /// <summary>The format of quantized factors (<c>--factor-dtype int8|int4…</c>, <see cref="FactorStorage"/>): what the
    /// spelling names is taken as it is; a group size it does not name is <see cref="GroupSize"/>, and zero points are on
    /// when it says <c>-zp</c> or <see cref="ZeroPoints"/> is (int8 has neither).</summary>
    public Quantization.QuantFormat FactorFormat(FactorStorage storage) => storage.Bits is { } bits
        ? Quantization.QuantFormat.ForBits(bits, storage.GroupSize ?? GroupSize, storage.ZeroPoints || ZeroPoints)
        : throw new LrkException(ErrorCodes.BadArgument, $"factor dtype {storage} is not a quantized format: use {Quantization.QuantFormat.Spellings}");

    /// <summary>GPTQ's knobs as the quantizer takes them.</summary>
    [JsonIgnore]
    public Quantization.GptqOptions Gptq => new() { Damping = GptqDamping, BlockSize = GptqBlockSize };

    /// <summary>Throws <see cref="ErrorCodes.BadRatio"/> / <see cref="ErrorCodes.BadMethodOption"/> for values no run can use.</summary>
    public void Validate()
    {
        static void Require(bool ok, string message)
        {
            if (!ok) throw new LrkException(ErrorCodes.BadMethodOption, message);
        }
        if (TargetBits is { } target)
        {
            Require(Method == CompressionMethod.SvdLlm, $"--target-bits allocates ranks and bit widths for SVD-LLM; {Method.Name()} is not supported");
            Require(target >= 1 && target <= 16, $"--target-bits must be in [1, 16] bits per weight (got {target})");
            if (Ratio != 0) throw new LrkException(ErrorCodes.BadRatio, $"--target-bits sets the size; a ratio cannot be given too (got {Ratio})");
        }
        else if (Method.IsQuantizationOnly())
        {
            Require(Bits is 8 or 4 or 3, $"{Method.Name()} needs --bits 8, 4 or 3 (got {(Bits is { } b ? b.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none")})");
            if (Ratio != 0) throw new LrkException(ErrorCodes.BadRatio, $"{Method.Name()} removes no parameters: its size is set by --bits, not a ratio (got {Ratio})");
        }
        else
        {
            CompressionRatio.Validate(Ratio);
            Require(Bits is null, $"--bits is for the quantization-only methods (rtn, gptq); {Method.Name()}'s factors are stored as --factor-dtype says (e.g. int8, int4)");
        }
        Require(FactorDtypeNames.GroupSizes.Contains(GroupSize), $"group size must be 32, 64 or 128 (got {GroupSize})");
        Require(GptqDamping > 0 && GptqDamping < 1, $"GPTQ damping must be in (0, 1) (got {GptqDamping})");
        Require(GptqBlockSize is >= 1 and <= 4096, $"GPTQ block size must be in [1, 4096] (got {GptqBlockSize})");
        Require(BatchSize >= 1, $"batch size must be at least 1 (got {BatchSize})");
        Require(RankMultiple is >= 1 and <= 1024, $"rank multiple must be in [1, 1024] (got {RankMultiple})");
        Require(FisherBatchSize >= 1, $"FWSVD Fisher batch size must be at least 1 (got {FisherBatchSize})");
        Require(AsvdAlpha > 0 && AsvdAlpha <= 2, $"ASVD alpha must be in (0, 2] (got {AsvdAlpha})");
        Require(WhiteningEpsilon > 0 && WhiteningEpsilon < 1, $"whitening epsilon must be in (0, 1) (got {WhiteningEpsilon})");
        Require(AdaSvdIterations >= 0 && AdaSvdIterations <= 100, $"AdaSVD iterations must be in [0, 100] (got {AdaSvdIterations})");
        Require(AdaSvdBucketSize >= 1, $"AdaSVD bucket size must be at least 1 (got {AdaSvdBucketSize})");
        Require(AdaSvdImportanceSamples >= 0, $"AdaSVD importance samples must be non-negative (got {AdaSvdImportanceSamples})");
        Require(AdaSvdRetentionGap >= 0 && AdaSvdRetentionGap < 1, $"AdaSVD retention gap must be in [0, 1) (got {AdaSvdRetentionGap})");
        if (AdaSvdMinRetention is { } mrr)
            Require(mrr > 0 && mrr <= 1 - Ratio, $"AdaSVD minimum retention must be in (0, {1 - Ratio}] (got {mrr})");
        Require(AdaSvdPinvRtol >= 0 && AdaSvdPinvRtol < 1, $"AdaSVD pinv rtol must be in [0, 1) (got {AdaSvdPinvRtol})");
        Require(LcSvdRidge >= 0, $"LC-SVD ridge must be non-negative (got {LcSvdRidge})");
        Require(LcSvdSearchOffsets.Count > 0 && LcSvdSearchOffsets.Contains(0), "LC-SVD search offsets must include 0 (the uniform allocation)");
        Require(DeviceHiddenStateBytes is null or >= 0, "device hidden-state limit must be non-negative");
    }
}
