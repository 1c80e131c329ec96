namespace LowRank.Compression;

/// <summary>What happened to one linear.</summary>
public sealed record ModuleReport
{
    public required string Name { get; init; }
    public required string Kind { get; init; }
    public required int Block { get; init; }
    public required long OutFeatures { get; init; }
    public required long InFeatures { get; init; }
    /// <summary>The retention the plan asked for (allocating methods vary it per linear).</summary>
    public required double Retention { get; init; }
    public required long Rank { get; init; }
    /// <summary>True when the layer was left dense (factorising at that rank would save nothing).</summary>
    public required bool Dense { get; init; }
    public required long Parameters { get; init; }
    /// <summary>How the input Gram was whitened (whitening-based methods); null otherwise.</summary>
    public string? Whitening { get; init; }
    /// <summary>sqrt(Σ dropped σ²) / sqrt(Σ σ²) of the matrix the method truncated (its own error measure).</summary>
    public double? RelativeTruncationLoss { get; init; }
    /// <summary>AdaSVD: the adaComp objective ‖W X_t − U Vᵀ X‖² relative to ‖W X_t‖², before and after the refit.</summary>
    public double? ObjectiveBefore { get; init; }
    public double? ObjectiveAfter { get; init; }
}

/// <summary>Per-block results of the allocating and block-level methods.</summary>
public sealed record BlockReport
{
    public required int Block { get; init; }
    /// <summary>Retention given to this block (AdaSVD adaCR, LC-SVD rank search); null for per-linear allocations.</summary>
    public double? Retention { get; init; }
    /// <summary>AdaSVD adaCR: 1 − cos(block input, block output), normalised by the mean over blocks.</summary>
    public double? Importance { get; init; }
    /// <summary>‖f(x_o) − f'(x)‖² / ‖f(x_o)‖² on calibration data: original block on original inputs vs the compressed block
    /// on the compressed model's inputs (measured by LC-SVD; "chosen" names the factorisation kept).</summary>
    public double? OutputError { get; init; }
    public double? SvdLlmOutputError { get; init; }
    public string? Chosen { get; init; }
    /// <summary>LC-SVD rank search: the relative block output error at each candidate retention (profiling pass).</summary>
    public IReadOnlyList<double>? CandidateRetentions { get; init; }
    public IReadOnlyList<double>? CandidateErrors { get; init; }
}

/// <summary>The record of one compression run; written as report.json next to the artifact.</summary>
public sealed record CompressionReport
{
    public required string Method { get; init; }
    public required CompressionOptions Options { get; init; }
    public required string Propagation { get; init; }
    public required RatioSummary Ratio { get; init; }
    public required IReadOnlyList<ModuleReport> Modules { get; init; }
    public required IReadOnlyList<BlockReport> Blocks { get; init; }
    /// <summary>Calibration samples × tokens per sample (0 × 0 for SVD, which needs none).</summary>
    public required long CalibrationSamples { get; init; }
    public required long CalibrationSequenceLength { get; init; }
    public required string Device { get; init; }
    /// <summary>How the Gram products were computed (<see cref="GramPrecision"/> as resolved for this device and
    /// activation dtype: Fp32, Tf32 or TensorCores).</summary>
    public string? GramPath { get; init; }
    /// <summary>Whether block decompositions overlapped the next block's profiling, and why (not).</summary>
    public string? DecompositionOverlap { get; init; }
    /// <summary>AdaSVD: how the original model was profiled (<see cref="CompressionOptions.AdaSvdOriginalPass"/>) and why.</summary>
    public string? OriginalPass { get; init; }
    /// <summary>The quantization of the weights (rtn, gptq) or of the factors (<c>--factor-dtype int8|int4|int3</c>).</summary>
    public QuantizationReport? Quantization { get; init; }

    /// <summary><c>--target-bits</c>: each linear's rank and format as chosen under the budget.</summary>
    public BitAllocationReport? Allocation { get; init; }

    /// <summary>Wall-clock seconds per stage (fisher, profile, compress) and in total.</summary>
    public required IReadOnlyDictionary<string, double> Seconds { get; init; }
}

/// <summary>What quantizing one linear did. Objectives are <c>‖(T − Q)X‖² / ‖T X‖²</c> on the calibration inputs X
/// the linear saw in the pass, T its target (the original weight).</summary>
public sealed record QuantizedModuleReport
{
    public required string Name { get; init; }
    public required string Format { get; init; }
    /// <summary>Factors Â·B̂ (true) or a dense weight (false).</summary>
    public required bool Factorized { get; init; }
    public long? Rank { get; init; }
    /// <summary>Bytes stored for the weight: codes, scales, zero points.</summary>
    public required long Bytes { get; init; }
    /// <summary>The objective before quantization (the float factors' truncation error; 0 for a dense weight).</summary>
    public double? FloatObjective { get; init; }
    /// <summary>The objective of what was stored.</summary>
    public double? Objective { get; init; }
    /// <summary>GPTQ runs: the objective round to nearest would have given.</summary>
    public double? RtnObjective { get; init; }
    /// <summary>"gptq" or "rtn": the quantizer whose result was stored (GPTQ's result is replaced by RTN's in the rare
    /// case RTN's objective is lower, so GPTQ is never worse than RTN on the calibration data).</summary>
    public required string Chosen { get; init; }
}

/// <summary>The quantization of a run: per linear, and the bytes it stores.</summary>
public sealed record QuantizationReport
{
    /// <summary>"gptq" or "rtn".</summary>
    public required string Quantizer { get; init; }
    /// <summary>The format every quantized linear shares, or "mixed".</summary>
    public required string Format { get; init; }
    public required IReadOnlyList<QuantizedModuleReport> Modules { get; init; }
    /// <summary>Σ bytes of the quantized linears' weights.</summary>
    public required long Bytes { get; init; }
    /// <summary>8·<see cref="Bytes"/> / Σ out·in over the quantized linears.</summary>
    public required double BitsPerWeight { get; init; }
    /// <summary>How many linears kept RTN's result because GPTQ's was worse (see <see cref="QuantizedModuleReport.Chosen"/>).</summary>
    public int RtnFallbacks { get; init; }
    public required double Seconds { get; init; }
}
