using LowRank.Quantization;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>Weight loading with shape checks: dense, factorised and quantized linears, the other tensors.</summary>
public abstract partial class DecoderModel
{
    /// <summary>Loads a non-linear tensor (embedding, norm, head) onto the device in the compute dtype and lists it in <see cref="OtherTensors"/>.</summary>
    protected Tensor Take(string name, params long[] shape)
    {
        var tensor = LoadChecked(name, shape, Device);
        others[name] = tensor;
        return tensor;
    }

    /// <summary>Loads the LayerNorm <paramref name="name"/>: <c>name.weight</c> and <c>name.bias</c>, both [width].</summary>
    protected LayerNormWeights TakeLayerNorm(string name, long width) => new(Take($"{name}.weight", width), Take($"{name}.bias", width));

    protected Tensor? TakeOptional(string name, params long[] shape) => weights.Contains(name) ? Take(name, shape) : null;

    protected bool Has(string name) => weights.Contains(name);

    /// <summary>
    /// The output head <c>lm_head.weight</c> [vocab, width]: the <paramref name="embedding"/> when the config ties them
    /// (a stored head is only checked, <see cref="CheckTiedHead"/>) or, where the family's checkpoints may omit an untied
    /// head (<paramref name="embeddingWhenAbsent"/>: GPT-2, OPT), when there is none; else the stored one.
    /// </summary>
    protected Tensor TakeHead(Tensor embedding, long vocab, long width, bool embeddingWhenAbsent)
    {
        if (Config.TieWordEmbeddings) CheckTiedHead(HeadName, vocab, width);
        return Config.TieWordEmbeddings || (embeddingWhenAbsent && !Has(HeadName)) ? embedding : Take(HeadName, vocab, width);
    }

    private const string HeadName = "lm_head.weight";

    /// <summary>
    /// A tied model (tie_word_embeddings) uses its embedding as the head and ignores a stored <paramref name="name"/>,
    /// but an artifact carries that tensor along: one of another shape than the head's is refused
    /// (<see cref="ErrorCodes.BadCheckpoint"/>) instead of being copied into it unused.
    /// </summary>
    private void CheckTiedHead(string name, params long[] shape)
    {
        if (!weights.Contains(name)) return;
        var actual = weights.ShapeOf(name);
        if (actual is null)
        {
            using var stored = weights.Load(name);
            actual = stored.shape;
        }
        if (!actual.SequenceEqual(shape))
            throw new LrkException(ErrorCodes.BadCheckpoint,
                $"tensor '{name}' has shape [{string.Join(", ", actual)}] but the config implies [{string.Join(", ", shape)}] " +
                "(tie_word_embeddings is set, so the head is the embedding and a stored one must have its shape)");
    }

    /// <summary>
    /// Loads the linear <paramref name="name"/> of block <paramref name="block"/>: dense <c>name.weight</c> [out, in]
    /// ([in, out] for GPT-2's Conv1D, transposed here), or factors <c>name.lowrank_A.weight</c> [out, k] and
    /// <c>name.lowrank_B.weight</c> [k, in]; plus <c>name.bias</c> [out] when <paramref name="bias"/>.
    /// </summary>
    protected LinearWeight TakeLinear(int block, string name, string kind, long outFeatures, long inFeatures, bool bias, bool conv1D = false)
    {
        var home = StreamBlocks ? CPU : Device;
        var biasTensor = bias ? LoadChecked(name + ".bias", [outFeatures], home) : null;
        try
        {
            var linear = LoadLinearWeight(name, kind, outFeatures, inFeatures, conv1D, home, biasTensor);
            blockLinears[block].Add(linear);
            return linear;
        }
        catch
        {
            biasTensor?.Dispose();
            throw;
        }
    }

    private LinearWeight LoadLinearWeight(string name, string kind, long outFeatures, long inFeatures, bool conv1D, Device home, Tensor? biasTensor)
    {
        if (QuantizedLinears.TryGetValue(name, out var quantized))
        {
            if (quantized.OutFeatures != outFeatures || quantized.InFeatures != inFeatures)
                throw new LrkException(ErrorCodes.BadArtifact,
                    $"config.json: lowrank.quantization.linears.{name} is [{quantized.OutFeatures}, {quantized.InFeatures}] but the config implies [{outFeatures}, {inFeatures}]");
            return LoadQuantized(name, kind, quantized.Format, outFeatures, inFeatures, home, biasTensor);
        }
        if (lazy && weights.Contains(name + ".weight") && weights.ShapeOf(name + ".weight") is { } storedShape)
        {
            var weightName = name + ".weight";
            long[] expected = conv1D ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
            CheckShape(weightName, storedShape, expected);
            consumed.Add(weightName);
            return LinearWeight.Lazy(name, kind, outFeatures, inFeatures, () =>
            {
                using var scope = NewDisposeScope();
                var loaded = LoadTensor(weightName, expected, CPU);
                return (conv1D ? loaded.t().contiguous() : loaded).MoveToOuterDisposeScope();
            }, biasTensor, ComputeDtype);
        }
        if (weights.Contains(name + ".weight"))
        {
            Tensor weight;
            if (conv1D)
            {
                using var stored = LoadChecked(name + ".weight", [inFeatures, outFeatures], home);
                weight = stored.t().contiguous().DetachFromDisposeScope();
            }
            else
            {
                weight = LoadChecked(name + ".weight", [outFeatures, inFeatures], home);
            }
            return new LinearWeight(name, kind, weight, biasTensor);
        }
        if (weights.Contains(name + FactorASuffix) && weights.Contains(name + FactorBSuffix))
        {
            var a = LoadChecked(name + FactorASuffix, [outFeatures, -1], home);
            try
            {
                var b = LoadChecked(name + FactorBSuffix, [a.shape[1], inFeatures], home);
                return LinearWeight.Factorized(name, kind, a, b, biasTensor);
            }
            catch
            {
                a.Dispose();
                throw;
            }
        }
        throw new LrkException(ErrorCodes.MissingTensor,
            $"the checkpoint has neither '{name}.weight' nor the factors '{name}{FactorASuffix}' and '{name}{FactorBSuffix}'");
    }

    /// <summary>The quantized linears of a compressed artifact and their formats (its config's <c>lowrank.quantization</c>).</summary>
    private IReadOnlyDictionary<string, LowRank.Artifacts.QuantizedLinear> QuantizedLinears => quantizedLinears ??=
        LowRank.Artifacts.ArtifactQuantization.Of(Config.Raw, "config.json");

    private IReadOnlyDictionary<string, LowRank.Artifacts.QuantizedLinear>? quantizedLinears;

    /// <summary>
    /// A linear stored as integers: <c>name.qweight</c>/<c>.scales</c>/<c>.qzeros</c> [out, in] (a quantized dense weight,
    /// in the nn.Linear layout for every family, GPT-2 included), or the same under <c>name.lowrank_A</c> [out, k] and
    /// <c>name.lowrank_B</c> [k, in]. Kept packed; the forward pass dequantizes.
    /// </summary>
    private LinearWeight LoadQuantized(string name, string kind, QuantFormat format, long outFeatures, long inFeatures, Device home, Tensor? biasTensor)
    {
        var prefixA = name + FactorASuffix[..^".weight".Length];
        var prefixB = name + FactorBSuffix[..^".weight".Length];
        if (weights.Contains(name + QuantizedMatrix.CodesSuffix))
        {
            var weight = LoadMatrix(name, format, outFeatures, inFeatures, home);
            return LinearWeight.Quantized(name, kind, outFeatures, inFeatures, weight, null, null, biasTensor, ComputeDtype);
        }
        if (weights.Contains(prefixA + QuantizedMatrix.CodesSuffix) && weights.Contains(prefixB + QuantizedMatrix.CodesSuffix))
        {
            var rank = weights.ShapeOf(prefixB + QuantizedMatrix.CodesSuffix)?[0] ?? -1;
            var b = LoadMatrix(prefixB, format, rank, inFeatures, home);
            try
            {
                var a = LoadMatrix(prefixA, format, outFeatures, b.Rows, home);
                return LinearWeight.Quantized(name, kind, outFeatures, inFeatures, null, a, b, biasTensor, ComputeDtype);
            }
            catch
            {
                b.Dispose();
                throw;
            }
        }
        throw new LrkException(ErrorCodes.MissingTensor,
            $"config.json lists '{name}' as quantized ({format}) but the checkpoint has neither '{name}{QuantizedMatrix.CodesSuffix}' nor '{prefixA}{QuantizedMatrix.CodesSuffix}' and '{prefixB}{QuantizedMatrix.CodesSuffix}'");
    }

    /// <summary>Reads one quantized matrix (rows = -1: as stored) and checks it against its format.</summary>
    private QuantizedMatrix LoadMatrix(string prefix, QuantFormat format, long rows, long cols, Device device)
    {
        using var scope = NewDisposeScope();
        Tensor Raw(string name)
        {
            consumed.Add(name);
            return weights.Load(name).to(device);
        }
        var codes = Raw(prefix + QuantizedMatrix.CodesSuffix);
        var scales = Raw(prefix + QuantizedMatrix.ScalesSuffix);
        var zeros = weights.Contains(prefix + QuantizedMatrix.ZerosSuffix) ? Raw(prefix + QuantizedMatrix.ZerosSuffix) : null;
        var matrix = QuantizedMatrix.FromStored(prefix, format, rows < 0 ? codes.shape[0] : rows, cols, codes, scales, zeros);
        return matrix;
    }

    /// <summary>Loads a tensor, checks its shape (-1 = any), converts it to the compute dtype on <paramref name="device"/>.</summary>
    private Tensor LoadChecked(string name, long[] shape, Device device)
    {
        var tensor = LoadTensor(name, shape, device);
        consumed.Add(name);
        return tensor;
    }

    /// <summary><see cref="LoadChecked"/> without the bookkeeping (safe from the prefetch thread).</summary>
    private Tensor LoadTensor(string name, long[] shape, Device device)
    {
        if (!weights.Contains(name)) throw new LrkException(ErrorCodes.MissingTensor, $"the checkpoint has no tensor '{name}' ({Config.Architecture} needs it)");
        using var scope = NewDisposeScope();
        var stored = weights.Load(name);
        CheckShape(name, stored.shape, shape);
        if (!stored.is_floating_point())
            throw new LrkException(ErrorCodes.BadCheckpoint, $"tensor '{name}' has dtype {stored.dtype}; weights must be floating point");
        return stored.to(ComputeDtype, device).contiguous().DetachFromDisposeScope();
    }

    private static void CheckShape(string name, long[] actual, long[] shape)
    {
        if (actual.Length != shape.Length || actual.Where((d, i) => shape[i] >= 0 && d != shape[i]).Any())
            throw new LrkException(ErrorCodes.BadCheckpoint,
                $"tensor '{name}' has shape [{string.Join(", ", actual)}] but the config implies [{string.Join(", ", shape.Select(d => d < 0 ? "k" : d.ToString()))}]");
    }
}
