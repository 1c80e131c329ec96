using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// The calibration set's hidden states at one point of the model, [samples, seq, hidden], held on the host or on the
/// compute device (<see cref="CompressionOptions.DeviceHiddenStateBytes"/>) and handed out a batch at a time.
/// </summary>
internal sealed class HiddenStates : IDisposable
{
    private Tensor data;

    private HiddenStates(Tensor data) => this.data = data.DetachFromDisposeScope();

    public long Samples => data.shape[0];

    public Device StorageDevice => data.device;

    public static Device ChooseStorage(Device compute, long samples, long seq, long hidden, ScalarType dtype, long deviceLimitBytes)
    {
        if (compute.type == DeviceType.CPU) return compute;
        var bytes = samples * seq * hidden * (dtype is ScalarType.Float16 or ScalarType.BFloat16 ? 2 : 4);
        return bytes <= deviceLimitBytes ? compute : CPU;
    }

    /// <summary>Embeds the calibration ids [N, L] batch by batch.</summary>
    public static HiddenStates Embed(IDecoderModel model, Tensor ids, Device storage, int batchSize)
    {
        using var scope = NewDisposeScope();
        Tensor? all = null;
        for (long start = 0; start < ids.shape[0]; start += batchSize)
        {
            using var batchScope = NewDisposeScope();
            var length = Math.Min(batchSize, ids.shape[0] - start);
            var hidden = model.Embed(ids.narrow(0, start, length).to(model.Device));
            all ??= empty([ids.shape[0], ids.shape[1], hidden.shape[2]], dtype: hidden.dtype, device: storage).DetachFromDisposeScope();
            all.narrow(0, start, length).copy_(hidden);
        }
        return new HiddenStates(all ?? throw new LrkException(ErrorCodes.DataTooShort, "the calibration set is empty"));
    }

    /// <summary>Uninitialised states [samples, seq, width] (to be filled batch by batch with <see cref="Write"/>).</summary>
    public static HiddenStates Allocate(long samples, long seq, long width, ScalarType dtype, Device storage)
    {
        using var scope = NewDisposeScope();
        return new HiddenStates(empty([samples, seq, width], dtype: dtype, device: storage));
    }

    /// <summary>Bytes held, on <see cref="StorageDevice"/>.</summary>
    public long Bytes => data.NumberOfElements * data.ElementSize;

    public HiddenStates Clone()
    {
        using var scope = NewDisposeScope();
        return new HiddenStates(data.clone());
    }

    public HiddenStates EmptyLike()
    {
        using var scope = NewDisposeScope();
        return new HiddenStates(empty_like(data));
    }

    public Tensor Batch(long[] indices, Device device)
    {
        if (IsContiguous(indices)) return data.narrow(0, indices[0], indices.Length).to(device);
        using var index = tensor(indices, device: data.device);
        return data.index_select(0, index).to(device);
    }

    public void Write(long[] indices, Tensor values)
    {
        using var scope = NewDisposeScope();
        var stored = values.to(data.dtype, data.device);
        if (IsContiguous(indices)) data.narrow(0, indices[0], indices.Length).copy_(stored);
        else data.index_copy_(0, tensor(indices, device: data.device), stored);
    }

    /// <summary>Takes over <paramref name="other"/>'s tensor (the next block's input), disposing this one's.</summary>
    public void ReplaceWith(HiddenStates other)
    {
        data.Dispose();
        data = other.data;
        other.data = empty(0);
    }

    private static bool IsContiguous(long[] indices)
    {
        for (var i = 1; i < indices.Length; i++)
        {
            if (indices[i] != indices[0] + i) return false;
        }
        return indices.Length > 0;
    }

    public void Dispose() => data.Dispose();
}
