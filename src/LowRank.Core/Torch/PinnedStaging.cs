using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Torch;

/// <summary>
/// Device → host copies through a reusable page-locked buffer. A copy into pageable memory goes through the driver's
/// own small staging buffers, several times slower (BENCHMARKS.md, "GPU", block_leave); into page-locked memory
/// it runs at the bus's speed, and the copy from there into ordinary host memory is a memcpy. The buffer (one per
/// dtype, grown to the largest tensor seen) stays for the process: a block's factors are at most a few hundred MB.
/// </summary>
public static class PinnedStaging
{
    private static readonly object Gate = new();
    private static readonly Dictionary<ScalarType, Tensor> Buffers = [];

    /// <summary>A host (pageable) copy of the CUDA tensor <paramref name="source"/>.</summary>
    public static Tensor ToHost(Tensor source)
    {
        if (source.device_type != DeviceType.CUDA) return source.to(CPU);
        var elements = source.NumberOfElements;
        if (elements == 0) return source.to(CPU);
        lock (Gate)
        {
            if (!Buffers.TryGetValue(source.dtype, out var buffer) || buffer.NumberOfElements < elements)
            {
                buffer?.Dispose();
                using var pageable = empty([elements], source.dtype, CPU);
                buffer = pageable.pin_memory().DetachFromDisposeScope();
                Buffers[source.dtype] = buffer;
            }
            using var scope = NewDisposeScope();
            var staged = buffer.narrow(0, 0, elements).view(source.shape);
            staged.copy_(source.contiguous());
            return staged.clone().MoveToOuterDisposeScope();
        }
    }
}
