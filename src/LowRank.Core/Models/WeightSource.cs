using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// Where a model's tensors come from, independent of the file format: the names present and a loader returning
/// a CPU tensor as stored (any dtype) that the caller then owns. A safetensors folder, a llama2.c checkpoint and
/// an in-memory dictionary all serve as one.
/// </summary>
public sealed class WeightSource
{
    private readonly HashSet<string> names;
    private readonly Func<string, Tensor> load;

    public WeightSource(IEnumerable<string> names, Func<string, Tensor> load)
    {
        this.names = new HashSet<string>(names, StringComparer.Ordinal);
        this.load = load;
    }

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
