using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>Called with the input of each linear of a block as it runs: <paramref name="input"/> is [..., in_features].
/// The tensor is only valid during the call (copy or reduce it, e.g. into a Gram matrix).</summary>
public delegate void LinearInputObserver(LinearWeight linear, Tensor input);

/// <summary>
/// A causal decoder, exposed block by block so compressors can run block i on given hidden states, watch each
/// linear's input, replace its weights, and move on (the SVD-LLM/AdaSVD sequential pipeline), and so evaluation
/// can stream a model larger than device memory one block at a time.
/// All activations are fp32 unless the model was loaded in another compute dtype.
/// </summary>
public interface IDecoderModel : IDisposable
{
    ModelConfig Config { get; }

    /// <summary>The device computations run on. Weights of a block are there at least while the block runs.</summary>
    Device Device { get; }

    int BlockCount { get; }

    /// <summary>Token ids [batch, seq] (int64) → hidden states [batch, seq, hidden] at positions 0..seq-1
    /// (token embedding, plus learned positions for OPT/GPT-2).</summary>
    Tensor Embed(Tensor inputIds);

    /// <summary>Runs decoder block <paramref name="index"/> with full causal attention over positions 0..seq-1.</summary>
    Tensor RunBlock(int index, Tensor hidden, LinearInputObserver? observer = null);

    /// <summary>Keeps block <paramref name="index"/>'s weights on <see cref="Device"/> until the result is disposed, so a
    /// streamed model moves them once for many <see cref="RunBlock"/> calls (and a method's factors land there too);
    /// nested holds are fine. Models that keep every block on the device return a no-op.</summary>
    IDisposable HoldOnDevice(int index) => NoHold.Instance;

    /// <summary>Final norm and LM head: hidden [batch, seq, hidden] → logits [batch, seq, vocab] in fp32.</summary>
    Tensor Head(Tensor hidden);

    /// <summary>The block's linears in execution order (q, k, v, o, gate, up, down for LLaMA; names as in the checkpoint).</summary>
    IReadOnlyList<LinearWeight> BlockLinears(int index);

    /// <summary>Every tensor that is not a block linear's weight (embeddings, norms, biases of non-linears, lm_head), by checkpoint name.</summary>
    IReadOnlyDictionary<string, Tensor> OtherTensors { get; }

    /// <summary>A fresh decoding state for <see cref="Logits(Tensor, KvCache)"/>.</summary>
    KvCache CreateCache() => new(BlockCount);

    /// <summary>
    /// Incremental forward for generation: <paramref name="inputIds"/> [batch, n] continue the sequence held by
    /// <paramref name="cache"/> (at positions cache.Length..); returns their logits [batch, n, vocab] (fp32) and
    /// appends them to the cache. This default recomputes the whole sequence; models with a real KV cache override it.
    /// </summary>
    Tensor Logits(Tensor inputIds, KvCache cache)
    {
        using var scope = NewDisposeScope();
        var history = cache.AppendTokens(inputIds);
        var logits = Logits(history);
        cache.Advance(inputIds.shape[1]);
        return logits.narrow(1, history.shape[1] - inputIds.shape[1], inputIds.shape[1]).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Full forward: logits [batch, seq, vocab] (fp32).</summary>
    Tensor Logits(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var hidden = Embed(inputIds);
        for (var i = 0; i < BlockCount; i++) hidden = RunBlock(i, hidden);
        return Head(hidden).MoveToOuterDisposeScope();
    }
}

internal sealed class NoHold : IDisposable
{
    public static readonly NoHold Instance = new();

    public void Dispose()
    {
    }
}
