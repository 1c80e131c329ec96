using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Torch;

/// <summary>
/// A host thread whose torch work runs on <see cref="CudaStreams"/>' copy stream: a streamed model's next block is moved
/// to the GPU there while the current one computes, instead of at the block's arrival on the compute stream. Measured on
/// the H100 machine (BENCHMARKS.md, issue 8): bringing a 7B block's 0.4 GB over took 92 ms of each block's wall time,
/// with the compute waiting. Each piece of work ends with the stream synchronised, so what it made is complete when
/// <see cref="Wait"/> returns (the hand-over rule <see cref="CudaStreams"/> describes).
/// </summary>
internal sealed class CopyStreamWorker : IDisposable
{
    private readonly BlockingCollection<(Action Work, TaskCompletionSource Done)> queue = new(1);
    private readonly Thread thread;
    private readonly Device device;
    private Task? inFlight;

    private CopyStreamWorker(Device device)
    {
        this.device = device;
        thread = new Thread(Loop) { IsBackground = true, Name = "lowrank-block-copy" };
        thread.Start();
    }

    /// <summary>A worker for <paramref name="device"/>, or null where no copy stream can be made (then copies stay on the
    /// compute stream, as before).</summary>
    public static CopyStreamWorker? TryCreate(Device device) =>
        device.type == DeviceType.CUDA && CudaStreams.Available(device) ? new CopyStreamWorker(device) : null;

    private void Loop()
    {
        CudaStreams.UseCopyStreamOnThisThread();
        foreach (var (work, done) in queue.GetConsumingEnumerable())
        {
            try
            {
                work();
                CudaStreams.SynchronizeThisThread(device);
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }
    }

    /// <summary>Starts <paramref name="work"/> after the previous one (whose failure, if any, <see cref="Wait"/> rethrew or
    /// will rethrow first).</summary>
    public void Start(Action work)
    {
        Wait();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        queue.Add((work, done));
        inFlight = done.Task;
    }

    /// <summary>Waits for the work in flight, if any; rethrows its failure.</summary>
    public void Wait()
    {
        var pending = inFlight;
        inFlight = null;
        pending?.GetAwaiter().GetResult();
    }

    public void Dispose()
    {
        queue.CompleteAdding();
        thread.Join();
        queue.Dispose();
    }
}
