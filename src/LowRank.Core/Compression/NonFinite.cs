using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// NaN and ±Inf in what a compression reads or makes (weights, Grams, the matrix decomposed, factors) are an error
/// with <see cref="ErrorCodes.DecompositionFailed"/> naming the tensor, never passed on: LAPACK fails on them with a
/// native stack, a NaN Gram would silently whiten with the identity, and Inf factors would be written with exit 0.
/// </summary>
public static class NonFinite
{
    /// <summary>Throws when <paramref name="tensor"/> holds NaN or ±Inf; the message is "<paramref name="what"/> holds
    /// N NaN/Inf values" followed by <paramref name="advice"/>.</summary>
    public static void Check(Tensor tensor, string what, string advice)
    {
        using var scope = NewDisposeScope();
        if (!tensor.is_floating_point() || tensor.isfinite().all().item<bool>()) return;
        var count = tensor.numel() - tensor.isfinite().sum().item<long>();
        throw new LrkException(ErrorCodes.DecompositionFailed, $"{what} holds {count} NaN/Inf value(s); {advice}");
    }
}
