using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Torch;

/// <summary>
/// A host thread that runs one piece of torch work at a time beside the caller, on a CUDA stream of its own where one is
/// given (c10 keeps the current stream per thread, so the thread picks it once). Each piece ends with that stream
/// synchronised, so what it made is complete when <see cref="Wait"/> returns: the hand-over rule <see cref="CudaStreams"/>
/// describes. Used for the compressor's decompositions (side stream) and a streamed model's block copies (copy stream).
/// </summary>
internal sealed class StreamWorker : IDisposable
{
    private readonly BlockingCollection<(Action Work, TaskCompletionSource Done)> queue = new(1);
    private readonly Thread thread;
    private readonly Device device;
    private readonly Action? useStream;
    private Task? inFlight;

    /// <param name="useStream">Makes the thread's stream current (<see cref="CudaStreams.UseSideStreamOnThisThread"/>,
    /// <see cref="CudaStreams.UseCopyStreamOnThisThread"/>); null: the default stream, or the CPU.</param>
    public StreamWorker(string name, Device device, Action? useStream)
    {
        this.device = device;
        this.useStream = useStream;
        thread = new Thread(Loop) { IsBackground = true, Name = name };
        thread.Start();
    }

    /// <summary>A worker on the copy stream for <paramref name="device"/>, or null where no copy stream can be made (then
    /// copies stay on the compute stream). Copying the next block's weights beside the compute takes the copy off every
    /// block's wall time, where bringing a block over at its arrival leaves the compute waiting (BENCHMARKS.md, "GPU",
    /// block_arrive).</summary>
    public static StreamWorker? ForCopies(Device device) =>
        device.type == DeviceType.CUDA && CudaStreams.Available(device)
            ? new StreamWorker("lowrank-block-copy", device, CudaStreams.UseCopyStreamOnThisThread)
            : null;

    private void Loop()
    {
        useStream?.Invoke();
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

    /// <summary>Waits for the previous work (rethrowing its failure), then starts <paramref name="work"/>.</summary>
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
