using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Torch;

namespace LowRank.Jobs;

/// <summary>Everything <c>dotnet lowrank compress</c> (and the MSBuild task through it) asks for.</summary>
public sealed record CompressionJobOptions
{
    /// <summary>A model folder (HF layout: config.json, safetensors, tokenizer).</summary>
    public required string Model { get; init; }
    public required string Out { get; init; }
    public required CompressionOptions Compression { get; init; }
    /// <summary>The calibration text and sampler (<see cref="CalibrationSpec"/>); its text is null only for SVD and RTN.
    /// Its seed is also the manifest's.</summary>
    public CalibrationSpec Calibration { get; init; } = new();
    /// <summary>Dtype the factors are stored in; null = the source's torch_dtype.</summary>
    public FactorDtype? FactorDtype { get; init; }
    /// <summary>Store the factors as integers in this format (<c>--factor-dtype int8|int4|int3</c>, see
    /// <see cref="CompressionOptions.FactorFormat"/>); null = floating point (<see cref="FactorDtype"/>).</summary>
    public Quantization.QuantFormat? FactorFormat { get; init; }
    /// <summary>Measure perplexity on this text before and after compressing (recorded in the manifest); null = no evaluation.</summary>
    public TextPerplexitySpec? Evaluation { get; init; }
    public DeviceRequest Device { get; init; } = DeviceRequest.Auto;
    /// <summary>Weights and activations dtype while compressing (fp32 by default; fp16/bf16 are faster on GPUs and change
    /// the result a little, so they are part of what the artifact records).</summary>
    public TorchSharp.torch.ScalarType ComputeDtype { get; init; } = TorchSharp.torch.ScalarType.Float32;
    /// <summary>Null = auto: on a GPU every block goes to the device only while it is compressed (weights read lazily,
    /// so neither device nor host memory holds the whole model), except for FWSVD, whose backward passes need the whole
    /// model resident. The result does not depend on it.</summary>
    public bool? StreamBlocks { get; init; }
    public string? LibTorch { get; init; }
    public bool Force { get; init; }
    /// <summary>Largest safetensors file of the artifact before it is sharded.</summary>
    public long MaxShardBytes { get; init; } = 4L << 30;
}
