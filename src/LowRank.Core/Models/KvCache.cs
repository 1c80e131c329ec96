using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// Decoding state for generation: for every block, the keys and values (after RoPE, before GQA expansion)
/// of all positions seen so far, [batch, kv_heads, length, head_dim]. A model appends to it block by block
/// and then advances <see cref="Length"/> once the new positions went through every block.
/// The cache owns its tensors.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] keys;
    private readonly Tensor?[] values;
    private Tensor? tokens;

    public KvCache(int blockCount)
    {
        keys = new Tensor?[blockCount];
        values = new Tensor?[blockCount];
    }

    /// <summary>Positions cached so far: the next input starts at this position.</summary>
    public long Length { get; private set; }

    /// <summary>Appends a block's new keys and values and returns the block's full keys and values (owned by the cache).</summary>
    public (Tensor Keys, Tensor Values) Append(int block, Tensor newKeys, Tensor newValues)
    {
        keys[block] = Concatenate(keys[block], newKeys);
        values[block] = Concatenate(values[block], newValues);
        return (keys[block]!, values[block]!);
    }

    /// <summary>Marks <paramref name="count"/> new positions as cached (after every block appended them).</summary>
    public void Advance(long count) => Length += count;

    /// <summary>
    /// Token ids seen so far, kept for models that decode by recomputing the whole sequence
    /// (the default <see cref="IDecoderModel.Logits(Tensor, KvCache)"/>); returns the full history.
    /// </summary>
    public Tensor AppendTokens(Tensor inputIds)
    {
        tokens = Concatenate(tokens, inputIds, dimension: 1);
        return tokens;
    }

    private static Tensor Concatenate(Tensor? cached, Tensor fresh, long dimension = 2)
    {
        using var scope = NewDisposeScope();
        var joined = cached is null ? fresh.clone() : cat([cached, fresh], dimension);
        cached?.Dispose();
        return joined.DetachFromDisposeScope();
    }

    public void Dispose()
    {
        foreach (var tensor in keys.Concat(values)) tensor?.Dispose();
        Array.Clear(keys);
        Array.Clear(values);
        tokens?.Dispose();
        tokens = null;
    }
}
