using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>Block residency: holding a block on the device while it runs, streaming and lazy reading, read-ahead.</summary>
public abstract partial class DecoderModel
{
    public IDisposable HoldOnDevice(int index)
    {
        CheckBlock(index);
        if (!StreamBlocks && !lazy) return NoHold.Instance;
        bool first;
        lock (holds) first = holds[index]++ == 0;
        if (first) Arrive(index);
        return new BlockHold(this, index);
    }

    // The compressor's decomposition worker releases block i on its own thread while the main thread holds block i+1:
    // the counts are shared, each block's arrival and departure touch only that block's layers.
    private void Release(int index)
    {
        bool last;
        lock (holds) last = --holds[index] == 0;
        if (last) Leave(index);
    }

    /// <summary>Moves block <paramref name="index"/> to the device (reading lazy weights) and reads the next block ahead.</summary>
    private void Arrive(int index)
    {
        WaitForPrefetch();
        if (StreamBlocks)
        {
            foreach (var linear in blockLinears[index]) linear.MoveTo(Device);
        }
        // Read ahead: the next block's lazy weights from the checkpoint, and for a GPU into page-locked memory and on to
        // the GPU on the copy stream, beside this block's compute.
        var pin = StreamBlocks && Device.type == DeviceType.CUDA;
        if ((lazy || pin) && index + 1 < BlockCount)
        {
            var next = blockLinears[index + 1];
            var copier = pin ? Mover() : null;
            // TorchSharp's dispose scopes are per thread, so the tensors read on another thread are owned by the layers alone.
            prefetch = Task.Run(() =>
            {
                foreach (var linear in next) linear.Prefetch(pin);
                if (copier is null) return;
                copier.Start(() =>
                {
                    foreach (var linear in next) linear.MoveTo(Device);
                });
                copier.Wait();
            });
        }
    }

    private LowRank.Torch.StreamWorker? Mover()
    {
        if (!moverChecked)
        {
            moverChecked = true;
            mover = LowRank.Torch.StreamWorker.ForCopies(Device);
        }
        return mover;
    }

    /// <summary>Moves block <paramref name="index"/> back to the host; lazy weights nobody changed are dropped instead.</summary>
    private void Leave(int index)
    {
        // Weights brought over on the copy stream go back to its memory pool when freed, and the next copy may reuse that
        // memory at once: the stream that read them must be done first. That is the releasing thread's own (a block run
        // by one thread and released by another — the compressor's decomposition worker — was synchronised at hand-over).
        if (mover is not null) LowRank.Torch.CudaStreams.SynchronizeThisThread(Device);
        foreach (var linear in blockLinears[index])
        {
            if (lazy) linear.Evict();
            if (StreamBlocks) linear.MoveTo(CPU);
        }
    }

    private void WaitForPrefetch()
    {
        var pending = prefetch;
        prefetch = null;
        pending?.GetAwaiter().GetResult();
    }

    private sealed class BlockHold(DecoderModel model, int index) : IDisposable
    {
        private bool released;

        public void Dispose()
        {
            if (released) return;
            released = true;
            model.Release(index);
        }
    }

    private Tensor WithBlockOnDevice(int index, Func<Tensor> run)
    {
        if ((!StreamBlocks && !lazy) || holds[index] > 0) return run();
        Arrive(index);
        try
        {
            return run();
        }
        finally
        {
            Leave(index);
        }
    }

    private int CheckBlock(int index) =>
        index >= 0 && index < BlockCount ? index : throw new ArgumentOutOfRangeException(nameof(index), $"block {index} of {BlockCount}");

    /// <summary>Unlike <see cref="RunBlock"/>, the staged calls do not bring a block over themselves: a streamed or lazy
    /// block would be moved or read again for every step, which is correct but silently slow.</summary>
    private int CheckHeld(int index)
    {
        CheckBlock(index);
        if ((StreamBlocks || lazy) && holds[index] == 0)
            throw new InvalidOperationException(
                $"block {index} is not held on the device; call EnterBlock/StepBlock inside HoldOnDevice({index}) when blocks are streamed or read lazily");
        return index;
    }
}
