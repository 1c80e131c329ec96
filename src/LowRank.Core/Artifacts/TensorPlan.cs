using LowRank.Models;
using LowRank.Quantization;
using static TorchSharp.torch;

namespace LowRank.Artifacts;

/// <summary>
/// Decides, tensor by tensor in the source's order, what the artifact stores: factors for a factorised linear
/// (at the position of its weight), the source bytes for anything the model did not change, and the model's
/// values (in the source dtype) for the rare tensor a method changed. Counts parameters on the way.
/// </summary>
internal sealed class TensorPlan
{
    private readonly IDecoderModel model;
    private readonly FactorDtype factorDtype;
    private readonly Dictionary<string, LinearWeight> linears = new(StringComparer.Ordinal);
    private readonly HashSet<string> targets;
    private readonly long modelBefore;
    private readonly HashSet<string> modified = new(StringComparer.Ordinal);
    private readonly Func<string, bool>? include;
    private readonly Quantizer quantizer;
    private readonly Dictionary<string, string> sourceDtypes = new(StringComparer.Ordinal);
    private readonly HashSet<string> quantizedTensors = new(StringComparer.Ordinal);

    /// <param name="include">Only the source tensors it accepts (an <see cref="StreamedArtifact"/> shard); null = all.</param>
    /// <param name="quantizer">Which quantizer made the model's quantized linears (recorded in the section).</param>
    public TensorPlan(IDecoderModel model, TensorStore? store, FactorDtype factorDtype, IReadOnlyCollection<string>? targetLinears,
        Func<string, bool>? include = null, Quantizer quantizer = Quantizer.Gptq)
    {
        this.include = include;
        this.quantizer = quantizer;
        if (store is not null)
            foreach (var entry in store.Entries) sourceDtypes[entry.Name] = entry.Dtype;
        this.model = model;
        this.factorDtype = factorDtype;
        for (var block = 0; block < model.BlockCount; block++)
            foreach (var linear in model.BlockLinears(block)) linears[linear.Name] = linear;
        targets = new HashSet<string>(targetLinears ?? linears.Keys, StringComparer.Ordinal);
        foreach (var name in targets)
            if (!linears.ContainsKey(name)) throw new LrkException(ErrorCodes.BadArgument, $"target linear '{name}' is not a linear of the model");
        Specs = store is null ? FromModel() : FromStore(store);
        modelBefore = store?.Entries.Sum(e => e.ElementCount)
            ?? model.OtherTensors.Values.Sum(t => t.NumberOfElements) + linears.Values.Sum(l => l.OutFeatures * l.InFeatures + (l.Bias?.NumberOfElements ?? 0));
    }

    public List<TensorSpec> Specs { get; }

    public IReadOnlyCollection<string> ModifiedTensors
    {
        get
        {
            lock (modified) return modified.ToArray();
        }
    }

    public LowRankSection Section(string method, double requestedRatio)
    {
        long targetBefore = 0, targetAfter = 0, bytesBefore = 0, bytesAfter = 0;
        var ranks = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var quantized = new SortedDictionary<string, QuantizedLinear>(StringComparer.Ordinal);
        foreach (var name in targets)
        {
            var linear = linears[name];
            targetBefore += linear.OutFeatures * linear.InFeatures;
            targetAfter += linear.ParameterCount;
            bytesBefore += linear.OutFeatures * linear.InFeatures * SourceElementBytes(name);
            bytesAfter += StoredBytes(linear);
        }
        foreach (var linear in linears.Values.Where(l => l.IsFactorized)) ranks[linear.Name] = checked((int)linear.Rank);
        foreach (var linear in linears.Values.Where(l => l.IsQuantized))
            quantized[linear.Name] = new QuantizedLinear((linear.QuantizedWeight ?? linear.QuantizedA!).Format, linear.OutFeatures, linear.InFeatures);
        // Quantized tensors count as the parameters they stand for, not as their bytes.
        var modelAfter = Specs.Where(s => !quantizedTensors.Contains(s.Name)).Sum(s => s.Shape.Aggregate(1L, (p, d) => p * d))
            + linears.Values.Where(l => l.IsQuantized).Sum(l => l.ParameterCount);
        return new LowRankSection
        {
            FormatVersion = quantized.Count > 0 ? ArtifactFormat.Version : ArtifactFormat.PlainVersion,
            Method = method,
            RequestedRatio = requestedRatio,
            AchievedRatio = targetBefore == 0 ? 0 : 1.0 - (double)targetAfter / targetBefore,
            AchievedRatioModel = modelBefore == 0 ? 0 : 1.0 - (double)modelAfter / modelBefore,
            FactorDtype = factorDtype,
            Parameters = new ParameterCounts(targetBefore, targetAfter, modelBefore, modelAfter),
            TruncationRanks = ranks,
            Quantization = quantized.Count > 0 ? new ArtifactQuantization { Quantizer = quantizer, Linears = quantized } : null,
            LinearBytes = targetBefore == 0 ? null : new LinearBytes(bytesBefore, bytesAfter, 8.0 * bytesAfter / targetBefore),
        };
    }

    /// <summary>Bytes the artifact stores for a linear's weight (bias excluded).</summary>
    private long StoredBytes(LinearWeight linear)
    {
        if (linear.QuantizedWeight is { } w) return w.Bytes;
        if (linear.QuantizedA is { } a) return a.Bytes + linear.QuantizedB!.Bytes;
        if (linear.IsFactorized) return linear.ParameterCount * FactorElementBytes;
        return linear.OutFeatures * linear.InFeatures * SourceElementBytes(linear.Name);
    }

    private long FactorElementBytes => factorDtype == FactorDtype.Float32 ? 4 : 2;

    /// <summary>Element size of a linear's weight in the source (the config's dtype for a source without safetensors).</summary>
    private long SourceElementBytes(string linear)
    {
        if (sourceDtypes.TryGetValue(linear + ArtifactFormat.WeightSuffix, out var dtype) && SafeTensorsDtypes.TryGetElementSize(dtype, out var size)) return size;
        return (FactorDtypes.FromTorchDtype(model.Config.TorchDtype) ?? FactorDtype.Float32) == FactorDtype.Float32 ? 4 : 2;
    }

    private List<TensorSpec> FromStore(TensorStore store)
    {
        var specs = new List<TensorSpec>();
        var byTensor = new Dictionary<string, (LinearWeight Linear, bool IsBias)>(StringComparer.Ordinal);
        foreach (var linear in linears.Values)
        {
            foreach (var suffix in new[] { ArtifactFormat.WeightSuffix, ArtifactFormat.FactorASuffix, ArtifactFormat.FactorBSuffix })
                byTensor[linear.Name + suffix] = (linear, false);
            byTensor[linear.Name + ".bias"] = (linear, true);
        }
        var emitted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in store.Names)
        {
            if (include is not null && !include(name)) continue;
            var entry = store.Info(name);
            var stored = SafeTensorsDtypes.ToScalarType(entry.Dtype)
                ?? throw new LrkException(ErrorCodes.BadSafetensors, $"{store.Folder}: tensor '{name}' has dtype {entry.Dtype}, which cannot be carried into an artifact");
            if (byTensor.TryGetValue(name, out var owner) && !owner.IsBias)
            {
                var linear = owner.Linear;
                if (!emitted.Add(linear.Name)) continue;
                if (linear.IsFactorized || linear.IsQuantized)
                {
                    specs.AddRange(FactorSpecs(linear));
                }
                else if (name == linear.Name + ArtifactFormat.WeightSuffix)
                {
                    var conv1D = ArtifactFormat.IsConv1D(model.Config.Family, linear.Name);
                    specs.Add(SourceOrModel(store, name, stored, entry.Shape, () => conv1D ? linear.Weight!.t() : linear.Weight!));
                }
                else
                {
                    // The source stored this linear factorised and the model holds it dense again: store it dense.
                    var conv1D = ArtifactFormat.IsConv1D(model.Config.Family, linear.Name);
                    long[] shape = conv1D ? [linear.InFeatures, linear.OutFeatures] : [linear.OutFeatures, linear.InFeatures];
                    specs.Add(new TensorSpec(linear.Name + ArtifactFormat.WeightSuffix, stored, shape, () => conv1D ? linear.Weight!.t() : linear.Weight!));
                    modified.Add(linear.Name + ArtifactFormat.WeightSuffix);
                }
            }
            else if (owner.Linear is { } biased && owner.IsBias)
            {
                specs.Add(SourceOrModel(store, name, stored, entry.Shape, () => biased.Bias));
            }
            else if (model.OtherTensors.TryGetValue(name, out var other))
            {
                specs.Add(SourceOrModel(store, name, stored, entry.Shape, () => other));
            }
            else
            {
                specs.Add(new TensorSpec(name, stored, entry.Shape, () => store.Load(name)));
            }
        }
        var missing = linears.Keys.Where(n => !emitted.Contains(n)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0 && include is null)
            throw new LrkException(ErrorCodes.BadArtifact,
                $"{store.Folder}: the source holds no weight for the model's linear(s) {string.Join(", ", missing.Take(3))}; was the model loaded from this folder?");
        return specs;
    }

    /// <summary>The source tensor when the model's copy equals it (so its bytes pass through unchanged), else the model's.</summary>
    private TensorSpec SourceOrModel(TensorStore store, string name, ScalarType stored, long[] shape, Func<Tensor?> inModel) =>
        new(name, stored, shape, () =>
        {
            var source = store.Load(name);
            var current = inModel();
            if (current is null || !current.shape.SequenceEqual(shape)) return source;
            if (Same(source, current)) return source;
            lock (modified) modified.Add(name);
            return current;
        });

    private static bool Same(Tensor source, Tensor current)
    {
        using var scope = NewDisposeScope();
        var comparable = source.dtype == current.dtype && source.device == current.device ? source : source.to(current.dtype, current.device);
        return !comparable.ne(current).any().item<bool>();
    }

    /// <summary>What a factorised or quantized linear stores in place of its weight: float factors, quantized factors
    /// (<c>.lowrank_A.qweight</c>, …) or a quantized weight (<c>.qweight</c>, …).</summary>
    private IEnumerable<TensorSpec> FactorSpecs(LinearWeight linear)
    {
        if (linear.QuantizedWeight is { } weight)
            return Quantized(linear.Name, weight);
        if (linear.QuantizedA is { } a)
            return Quantized(linear.Name + ArtifactFormat.FactorAPrefix, a).Concat(Quantized(linear.Name + ArtifactFormat.FactorBPrefix, linear.QuantizedB!));
        return FloatFactorSpecs(linear);
    }

    private List<TensorSpec> Quantized(string prefix, QuantizedMatrix matrix)
    {
        var specs = QuantizedMatrix.Layout(prefix, matrix.Format, matrix.Rows, matrix.Columns).Zip(matrix.Named(prefix),
            (layout, named) => new TensorSpec(layout.Name, layout.Dtype, layout.Shape, () => named.Tensor)).ToList();
        foreach (var spec in specs) quantizedTensors.Add(spec.Name);
        return specs;
    }

    private IEnumerable<TensorSpec> FloatFactorSpecs(LinearWeight linear)
    {
        var dtype = factorDtype.ToScalarType();
        // Checked in the stored dtype before a byte is written (streamed shards are written before the factors are rounded).
        Tensor Storable(Tensor factor, string which)
        {
            using var stored = factor.to(dtype);
            ArtifactWriter.CheckStorable(linear.Name, which, stored, factorDtype);
            return factor;
        }
        yield return new TensorSpec(linear.Name + ArtifactFormat.FactorASuffix, dtype, [linear.OutFeatures, linear.Rank], () => Storable(linear.A!, "A"));
        yield return new TensorSpec(linear.Name + ArtifactFormat.FactorBSuffix, dtype, [linear.Rank, linear.InFeatures], () => Storable(linear.B!, "B"));
    }

    /// <summary>No safetensors source (a llama2.c checkpoint): every tensor comes from the model, non-factors in the config's dtype.</summary>
    private List<TensorSpec> FromModel()
    {
        var dense = FactorDtypes.FromTorchDtype(model.Config.TorchDtype)?.ToScalarType();
        var specs = new List<TensorSpec>();
        foreach (var (name, tensor) in model.OtherTensors)
            specs.Add(new TensorSpec(name, dense ?? tensor.dtype, tensor.shape, () => tensor));
        foreach (var linear in linears.Values)
        {
            if (linear.IsFactorized || linear.IsQuantized)
            {
                specs.AddRange(FactorSpecs(linear));
            }
            else
            {
                var conv1D = ArtifactFormat.IsConv1D(model.Config.Family, linear.Name);
                long[] shape = conv1D ? [linear.InFeatures, linear.OutFeatures] : [linear.OutFeatures, linear.InFeatures];
                specs.Add(new TensorSpec(linear.Name + ArtifactFormat.WeightSuffix, dense ?? linear.Weight!.dtype, shape, () => conv1D ? linear.Weight!.t() : linear.Weight!));
            }
            if (linear.Bias is { } bias)
                specs.Add(new TensorSpec(linear.Name + ".bias", dense ?? bias.dtype, bias.shape, () => bias));
        }
        return specs;
    }
}
