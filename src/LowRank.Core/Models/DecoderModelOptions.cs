using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>How a model's weights are placed and computed.</summary>
public sealed record DecoderModelOptions
{
    /// <summary>The device the forward pass runs on.</summary>
    public Device Device { get; init; } = CPU;

    /// <summary>Weights and activations are held in this dtype (fp32 by default); logits are always fp32.</summary>
    public ScalarType ComputeDtype { get; init; } = ScalarType.Float32;

    /// <summary>
    /// Keep every block's linears on the host and move block i onto <see cref="Device"/> only while it runs,
    /// for models larger than device memory. Embeddings, norms and the LM head stay on the device.
    /// </summary>
    public bool StreamBlocks { get; init; }

    /// <summary>
    /// Do not read the block linears at load time: read each block's dense weights from the checkpoint when the block
    /// runs (the next block is read ahead on a background thread) and drop them again when it is done, unless a method
    /// changed them. With <see cref="StreamBlocks"/> memory then holds about two blocks of original weights plus the
    /// factors made so far, so a checkpoint larger than host memory can be compressed.
    /// </summary>
    public bool LazyBlockWeights { get; init; }
}
