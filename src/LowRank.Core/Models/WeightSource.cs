using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// Where a model's tensors come from, independent of the file format: the names present and a loader returning
/// a CPU tensor as stored (any dtype) that the caller then owns. A safetensors folder, a llama2.c checkpoint and
/// an in-memory dictionary all serve as one.
/// </summary>
public sealed class WeightSource : IDisposable
{
    private readonly HashSet<string> names;
    private readonly Func<string, Tensor> load;
    private readonly Func<string, long[]>? shapeOf;
    private readonly IDisposable? owned;

    /// <param name="shapeOf">The stored shape of a tensor without reading it (lets lazy loading check shapes up front).</param>
    /// <param name="owned">What the loader reads from (an open checkpoint), disposed with this source; for a model that
    /// reads its weights lazily the source lives as long as the model.</param>
    public WeightSource(IEnumerable<string> names, Func<string, Tensor> load, Func<string, long[]>? shapeOf = null, IDisposable? owned = null)
    {
        this.names = new HashSet<string>(names, StringComparer.Ordinal);
        this.load = load;
        this.shapeOf = shapeOf;
        this.owned = owned;
    }

    public void Dispose() => owned?.Dispose();

    /// <summary>The stored shape of <paramref name="name"/>, or null when this source cannot tell without loading it.</summary>
    public long[]? ShapeOf(string name) => shapeOf is not null && names.Contains(name) ? shapeOf(name) : null;

    /// <summary>A source over tensors already in memory (tests, conversions); each load returns a copy.</summary>
    public static WeightSource FromTensors(IReadOnlyDictionary<string, Tensor> tensors) =>
        new(tensors.Keys, name => tensors[name].clone());

    public IReadOnlyCollection<string> Names => names;

    public bool Contains(string name) => names.Contains(name);

    public Tensor Load(string name)
    {
        if (!names.Contains(name)) throw new LrkException(ErrorCodes.MissingTensor, $"tensor '{name}' is not in the checkpoint");
        return load(name);
    }
}
