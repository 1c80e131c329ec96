using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>The math the families share: causal attention, head splitting, embedding lookup, learned positions, LayerNorm, activations.</summary>
public abstract partial class DecoderModel
{
    /// <summary>
    /// Scaled dot-product attention, causal, with optional sliding window: query [batch, heads, n, d] at positions
    /// start..start+n-1 against keys/values [batch, kv_heads, total, d] at positions 0..total-1. Grouped-query
    /// attention repeats each key/value head for heads/kv_heads consecutive query heads (HF repeat_kv).
    /// Returns [batch, n, heads·d]. Scale 1/√d.
    /// </summary>
    protected static Tensor Attention(Tensor query, Tensor key, Tensor value, long startPosition, int? slidingWindow = null)
    {
        using var scope = NewDisposeScope();
        var (batch, heads, n, headDim) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3]);
        var groups = heads / key.shape[1];
        if (groups > 1)
        {
            key = key.repeat_interleave(groups, dim: 1);
            value = value.repeat_interleave(groups, dim: 1);
        }
        var total = key.shape[2];
        var windowBinds = slidingWindow is { } w && total > w;
        Tensor output;
        if (startPosition == 0 && !windowBinds && total == n)
        {
            output = nn.functional.scaled_dot_product_attention(query, key, value, is_casual: n > 1);
        }
        else if (n == 1 && !windowBinds)
        {
            output = nn.functional.scaled_dot_product_attention(query, key, value);
        }
        else
        {
            var queryPositions = arange(startPosition, startPosition + n, device: query.device).unsqueeze(1);
            var keyPositions = arange(0, total, device: query.device).unsqueeze(0);
            var allowed = keyPositions <= queryPositions;
            if (slidingWindow is { } window) allowed = allowed.logical_and(keyPositions > queryPositions - window);
            output = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask: allowed);
        }
        return output.transpose(1, 2).reshape(batch, n, heads * headDim).MoveToOuterDisposeScope();
    }

    /// <summary>[batch, seq, heads·d] → [batch, heads, seq, d].</summary>
    protected static Tensor SplitHeads(Tensor x, long heads, long headDim) =>
        x.view(x.shape[0], x.shape[1], heads, headDim).transpose(1, 2);

    /// <summary>Token embedding lookup: ids [batch, seq] → [batch, seq, dim].</summary>
    protected static Tensor Lookup(Tensor table, Tensor ids) =>
        table.index_select(0, ids.reshape(-1)).view(ids.shape[0], ids.shape[1], table.shape[1]);

    /// <summary>The activation named by the config's hidden_act / activation_function (HF ACT2FN names).</summary>
    protected static Func<Tensor, Tensor> Activation(string name) => name switch
    {
        "silu" or "swish" => x => nn.functional.silu(x),
        "relu" => x => nn.functional.relu(x),
        "gelu" => x => nn.functional.gelu(x),
        // HF NewGELUActivation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        _ => throw new LrkException(ErrorCodes.UnsupportedArchitecture, $"activation '{name}' is not supported (supported: silu, relu, gelu, gelu_new)"),
    };

    /// <summary>Rows start..start+count-1 (+ <paramref name="offset"/>) of a learned position table, as [1, count, dim];
    /// positions past the model's maximum are refused.</summary>
    protected Tensor LearnedPositions(Tensor table, long startPosition, long count, long offset = 0)
    {
        CheckPositions(startPosition, count);
        return table.narrow(0, startPosition + offset, count).unsqueeze(0);
    }

    /// <summary>LayerNorm over the last dimension with the config's epsilon (GPT-2, OPT).</summary>
    protected Tensor LayerNorm(Tensor x, LayerNormWeights norm) =>
        nn.functional.layer_norm(x, [x.shape[^1]], norm.Weight, norm.Bias, Config.NormEps);

    /// <summary>Throws a clear error when learned position embeddings would be indexed past their table.</summary>
    private void CheckPositions(long startPosition, long count)
    {
        if (startPosition + count > Config.MaxPositions)
            throw new LrkException(ErrorCodes.BadArgument,
                $"{startPosition + count} positions exceed the model's maximum of {Config.MaxPositions} (max_position_embeddings)");
    }
}
