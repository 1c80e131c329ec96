using LowRank.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>When a block's decomposition runs beside the next block's profiling.</summary>
public enum DecompositionOverlap
{
    /// <summary><see cref="On"/> on CUDA where a side stream can be made (<see cref="CudaStreams"/>), else <see cref="Off"/>.</summary>
    Auto,
    /// <summary>Decompose block i on a worker thread (on CUDA: on its own stream) while block i+1 is profiled. Only where
    /// block i+1's statistics do not depend on block i's factors (the original-model stream); elsewhere it is off.</summary>
    On,
    /// <summary>One thing at a time.</summary>
    Off,
}

/// <summary>
/// A host thread that runs one block's decomposition at a time while the caller goes on with the next block. On CUDA the
/// thread issues its torch work on <see cref="CudaStreams"/>' side stream: the fp64 Cholesky/eigh/products of block i
/// (cuSOLVER's latency-bound kernels) then overlap the fp16 GEMMs that profile block i+1. The caller hands over work
/// only after synchronising its own stream (so the Grams are complete), the work owns and frees what it was given
/// after this thread synchronised the side stream, and <see cref="Wait"/> returns only then: the rules
/// <see cref="CudaStreams"/> names. At most one block is in flight, so memory holds two blocks' statistics at most.
/// </summary>
internal sealed class DecompositionWorker : IDisposable
{
    private readonly StreamWorker thread;

    private DecompositionWorker(Device device, bool sideStream) =>
        thread = new StreamWorker("lowrank-decomposition", device, sideStream ? CudaStreams.UseSideStreamOnThisThread : null);

    /// <summary>A worker when <paramref name="overlap"/> resolves to on for <paramref name="device"/>, else null (and why, in <paramref name="reason"/>).</summary>
    public static DecompositionWorker? Create(DecompositionOverlap overlap, Device device, out string reason)
    {
        if (overlap == DecompositionOverlap.Off)
        {
            reason = "off (option)";
            return null;
        }
        if (device.type == DeviceType.CUDA)
        {
            if (CudaStreams.Available(device))
            {
                reason = "on: " + CudaStreams.Status;
                return new DecompositionWorker(device, sideStream: true);
            }
            reason = CudaStreams.Status;
            return null;
        }
        if (overlap == DecompositionOverlap.On)
        {
            reason = "on (worker thread; CPU)";
            return new DecompositionWorker(device, sideStream: false);
        }
        reason = "off (auto on the CPU: the cores are shared anyway)";
        return null;
    }

    /// <summary>Waits for the previous work (rethrowing its failure), then starts <paramref name="work"/>.</summary>
    public void Start(Action work) => thread.Start(work);

    /// <summary>Waits for the work in flight, if any; rethrows its failure.</summary>
    public void Wait() => thread.Wait();

    public void Dispose() => thread.Dispose();
}
