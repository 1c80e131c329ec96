using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>A LayerNorm's scale and shift, both [width] (GPT-2's <c>ln_*</c>, OPT's <c>*_layer_norm</c>).</summary>
public sealed record LayerNormWeights(Tensor Weight, Tensor Bias);
