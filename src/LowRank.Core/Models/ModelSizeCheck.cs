using System.Globalization;

namespace LowRank.Models;

/// <summary>
/// The sizes a config.json declares, checked against the tensors present before anything is allocated per layer or
/// per dimension: a config saying <c>num_hidden_layers: 1000000000</c> would otherwise have the loader allocate a
/// billion layers' bookkeeping (tens of GB) before it notices that layer 4 has no tensors, and <c>head_dim:
/// 1000000000</c> a 4 GB rotary table before the first shape check.
/// <list type="bullet">
/// <item>Layers: every index 0..num_layers-1 has tensors (a layer's index is the first all-digit segment of a tensor
/// name: <c>model.layers.3.…</c>, <c>transformer.h.3.…</c>); else <see cref="ErrorCodes.MissingTensor"/>.</item>
/// <item>Dimensions: hidden, intermediate and vocabulary sizes and the attention projections' widths
/// (heads·head_dim, kv_heads·head_dim) are each the length of some tensor's axis, so none may exceed the longest axis
/// present; else <see cref="ErrorCodes.BadCheckpoint"/>. (Skipped when the source cannot tell shapes without loading.)</item>
/// </list>
/// </summary>
public static class ModelSizeCheck
{
    public static void Check(ModelConfig config, IReadOnlyCollection<string> names, Func<string, long[]?> shapeOf)
    {
        CheckLayers(config, names);
        CheckDimensions(config, names, shapeOf);
    }

    private static void CheckLayers(ModelConfig config, IReadOnlyCollection<string> names)
    {
        var layers = new HashSet<int>();
        foreach (var name in names)
        {
            foreach (var segment in name.Split('.'))
            {
                if (segment.Length == 0 || !segment.All(char.IsAsciiDigit)) continue;
                if (int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var index)) layers.Add(index);
                break;
            }
        }
        // At most layers.Count iterations: a config of a billion layers fails at the first index missing.
        for (var i = 0; i < config.NumLayers; i++)
        {
            if (layers.Contains(i)) continue;
            var held = layers.Count == 0 ? "no layer tensors at all" : $"tensors of {layers.Count} layer(s), {layers.Min()}–{layers.Max()}";
            throw new LrkException(ErrorCodes.MissingTensor,
                $"config.json declares {config.NumLayers.ToString(CultureInfo.InvariantCulture)} layers (num_hidden_layers) but the checkpoint has no tensor of layer {i} ({held})");
        }
    }

    private static void CheckDimensions(ModelConfig config, IReadOnlyCollection<string> names, Func<string, long[]?> shapeOf)
    {
        long longest = 0;
        foreach (var name in names)
        {
            if (shapeOf(name) is not { } shape) return;
            foreach (var length in shape) longest = Math.Max(longest, length);
        }
        if (names.Count == 0) return;
        var declared = new List<(string Key, long Size)>
        {
            ("hidden_size", config.HiddenSize),
            ("intermediate_size", config.IntermediateSize),
            ("vocab_size", config.VocabSize),
            ("num_attention_heads·head_dim", (long)config.NumHeads * config.HeadDim),
            ("num_key_value_heads·head_dim", (long)config.NumKvHeads * config.HeadDim),
        };
        if (config.WordEmbedProjDim is { } projection) declared.Add(("word_embed_proj_dim", projection));
        foreach (var (key, size) in declared)
        {
            if (size > longest)
                throw new LrkException(ErrorCodes.BadCheckpoint,
                    $"config.json implies a {key} of {size.ToString(CultureInfo.InvariantCulture)}, but no tensor of the checkpoint has an axis longer than {longest.ToString(CultureInfo.InvariantCulture)}: config and weights do not belong together");
        }
    }
}
