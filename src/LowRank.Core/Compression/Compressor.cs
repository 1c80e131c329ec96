using System.Diagnostics;
using LowRank.Models;
using LowRank.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// Compresses a model in place with one of the methods, sequentially block by block:
/// the calibration set's hidden states enter block i (held on the host when large, moved in batches), observers
/// accumulate what the method needs from each linear's input (Grams, channel statistics; Fisher comes from backward
/// passes over the whole model), the block's linears are factorised (<see cref="LinearWeight.Factorize"/>), and the
/// block's output — of the original or of the compressed block, per <see cref="Propagation"/> — feeds block i+1.
/// Memory: one block's weights (twice for the block-level methods) plus the hidden states. The same code runs on the
/// CPU and on CUDA; on the CPU a fixed seed gives identical results.
/// </summary>
public static class Compressor
{
    /// <param name="model">The model to compress; its block linears are replaced by factors.</param>
    /// <param name="calibrationIds">[samples, seq] int64 token ids (each sample starting with BOS); null only for SVD.</param>
    public static CompressionReport Compress(IDecoderModel model, Tensor? calibrationIds, CompressionOptions options,
        IProgress<ProgressUpdate>? progress = null, CancellationToken cancellationToken = default) =>
        Compress(model, calibrationIds, options, progress, blockCompleted: null, cancellationToken);

    /// <param name="blockCompleted">Called (from any thread) once a block's layers are final — factors installed and, with
    /// block streaming, back on the host — so its part of the artifact can be written while later blocks are compressed
    /// (<see cref="LowRank.Artifacts.StreamedArtifact"/>). The block-by-block pipelines report every block; the others
    /// report none, and their artifact is written at the end.</param>
    public static CompressionReport Compress(IDecoderModel model, Tensor? calibrationIds, CompressionOptions options,
        IProgress<ProgressUpdate>? progress, Action<int>? blockCompleted, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (NeedsCalibration(options.Method)) CheckCalibration(calibrationIds, model, options);
        // Embeddings, norms and heads are carried into the artifact as they are; the block linears are checked as each is read.
        foreach (var (name, tensor) in model.OtherTensors)
            NonFinite.Check(tensor, name, "a checkpoint with non-finite weights cannot be compressed");
        var total = Stopwatch.StartNew();
        using var run = new CompressionRun(model, options, NeedsCalibration(options.Method) || calibrationIds is not null ? calibrationIds : null, progress, cancellationToken)
        {
            BlockCompleted = blockCompleted,
        };
        switch (options.Method)
        {
            case CompressionMethod.Svd: Svd.Run(run); break;
            case CompressionMethod.Fwsvd: Fwsvd.Run(run); break;
            case CompressionMethod.Asvd: Asvd.Run(run); break;
            case CompressionMethod.SvdLlm when options.TargetBits is { } bits:
                run.Follow(BitAllocation.Plan(run, bits));
                SvdLlm.Run(run);
                break;
            case CompressionMethod.SvdLlm: SvdLlm.Run(run); break;
            case CompressionMethod.SvdLlmV2: SvdLlmV2.Run(run); break;
            case CompressionMethod.AdaSvd: AdaSvd.Run(run); break;
            case CompressionMethod.LcSvd: LcSvd.Run(run); break;
            case CompressionMethod.Rtn or CompressionMethod.Gptq: QuantizationPass.RunBaseline(run); break;
            default: throw new LrkException(ErrorCodes.UnknownMethod, $"method {options.Method} has no pipeline");
        }
        lock (run.Seconds) run.Seconds["total"] = total.Elapsed.TotalSeconds;
        return run.BuildReport();
    }

    /// <summary>
    /// Quantizes the factors of a model a low-rank method has compressed (<c>--factor-dtype int8|int4|int3</c>), block by
    /// block on the calibration data through the model as it is being quantized (<see cref="QuantizationPass"/>).
    /// <paramref name="original"/> gives a linear's original dense weight [out, in] (the target the factors are fitted to;
    /// null, or a null result, fits them to A·B); the caller owns what it returns.
    /// </summary>
    public static QuantizationReport QuantizeFactors(IDecoderModel model, Tensor? calibrationIds, CompressionOptions options, Quantization.QuantFormat format,
        Func<LinearWeight, Tensor?>? original, IProgress<ProgressUpdate>? progress = null, CancellationToken cancellationToken = default) =>
        Quantize(model, calibrationIds, options, linear => linear.IsFactorized ? format : null, original, progress, cancellationToken);

    /// <summary>As <see cref="QuantizeFactors"/> with a format per linear (null leaves a linear as it is): factorised linears
    /// get quantized factors, dense ones a quantized weight (<c>--target-bits</c>'s choices).</summary>
    public static QuantizationReport Quantize(IDecoderModel model, Tensor? calibrationIds, CompressionOptions options, Func<LinearWeight, Quantization.QuantFormat?> formatOf,
        Func<LinearWeight, Tensor?>? original, IProgress<ProgressUpdate>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        if (options.FactorQuantizer == Quantization.Quantizer.Gptq) CheckCalibration(calibrationIds, model, options);
        using var run = new CompressionRun(model, options, calibrationIds, progress, cancellationToken);
        return QuantizationPass.Run(run, formatOf, options.FactorQuantizer, RefitsToOriginal(options.Method) ? original : null);
    }

    /// <summary>
    /// Whether quantized factors are refitted to the linear's original weight W (<see cref="Quantization.FactorQuantizer"/>'s
    /// target) or to the method's own product A·B. SVD, FWSVD, ASVD, SVD-LLM (V2) and AdaSVD fit each linear to its own
    /// W, so the refit to W continues their objective. LC-SVD fits a block's factors together to the block's output
    /// (its error-driven rank search and collaborative refits): pulling each linear back to W undoes that, so its factors
    /// are quantized against A·B and the refit only absorbs the rounding of B.
    /// </summary>
    public static bool RefitsToOriginal(CompressionMethod method) => method != CompressionMethod.LcSvd;

    /// <summary>Every method but SVD and RTN needs calibration data (RTN uses it only to report its objective).</summary>
    public static bool NeedsCalibration(CompressionMethod method) => method is not (CompressionMethod.Svd or CompressionMethod.Rtn);

    private static void CheckCalibration(Tensor? ids, IDecoderModel model, CompressionOptions options)
    {
        if (ids is null)
            throw new LrkException(ErrorCodes.DataTooShort, $"{options.Method.Name()} needs calibration data (only SVD and RTN work without)");
        if (ids.dim() != 2 || ids.dtype != ScalarType.Int64 || ids.shape[0] < 1 || ids.shape[1] < 2)
            throw new LrkException(ErrorCodes.DataTooShort,
                $"calibration ids must be a [samples, seq] int64 tensor with seq ≥ 2; got [{string.Join(", ", ids.shape)}] {ids.dtype}");
        if (ids.shape[1] > model.Config.MaxPositions)
            throw new LrkException(ErrorCodes.BadArgument, $"calibration sequence length {ids.shape[1]} exceeds the model's {model.Config.MaxPositions} positions");
        if (options.Method == CompressionMethod.AdaSvd && ids.shape[0] % options.AdaSvdBucketSize != 0)
            throw new LrkException(ErrorCodes.BadMethodOption,
                $"AdaSVD bucket size {options.AdaSvdBucketSize} must divide the number of calibration samples ({ids.shape[0]})");
    }
}
