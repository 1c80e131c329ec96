using LowRank.Models;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// The original dense weights of one block's linears and a set of candidate factors, so a block can be run as it
/// was (to get the original model's intermediate inputs) and as it is being compressed, alternately. Only the
/// block being worked on is held twice, which keeps memory bounded to one extra block.
/// </summary>
internal sealed class BlockWeights : IDisposable
{
    private readonly Dictionary<string, LinearWeight> linears = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> originals = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (Tensor A, Tensor B)> factors = new(StringComparer.Ordinal);
    private readonly HashSet<string> installed = new(StringComparer.Ordinal);

    public BlockWeights(IEnumerable<LinearWeight> blockLinears)
    {
        foreach (var linear in blockLinears)
        {
            if (linear.IsFactorized || linear.Weight is null)
                throw new LrkException(ErrorCodes.BadMethodOption, $"{linear.Name} is already factorised: compress an uncompressed model");
            linears[linear.Name] = linear;
            originals[linear.Name] = linear.Weight.clone().DetachFromDisposeScope();
        }
    }

    /// <summary>The original dense weight (on the layer's home device, in its dtype). Do not dispose.</summary>
    public Tensor Original(string name) => originals[name];

    public bool HasFactors(string name) => factors.ContainsKey(name);

    /// <summary>Stores factors for a linear (copies in the layer's dtype and home device) and installs them.</summary>
    public void SetFactors(string name, Tensor a, Tensor b)
    {
        var home = originals[name];
        if (factors.Remove(name, out var old))
        {
            old.A.Dispose();
            old.B.Dispose();
        }
        factors[name] = (a.to(home.dtype, home.device).clone().DetachFromDisposeScope(), b.to(home.dtype, home.device).clone().DetachFromDisposeScope());
        Install(name);
    }

    /// <summary>Every linear back to its original dense weight (factors are kept for <see cref="UseCompressed"/>).</summary>
    public void UseOriginal()
    {
        foreach (var name in installed.ToArray())
        {
            linears[name].SetDense(originals[name].clone());
            installed.Remove(name);
        }
    }

    /// <summary>Every linear that has factors uses them.</summary>
    public void UseCompressed()
    {
        foreach (var name in factors.Keys)
        {
            if (!installed.Contains(name)) Install(name);
        }
    }

    /// <summary>Drops all factors and restores the dense weights.</summary>
    public void ClearFactors()
    {
        UseOriginal();
        foreach (var (a, b) in factors.Values)
        {
            a.Dispose();
            b.Dispose();
        }
        factors.Clear();
    }

    private void Install(string name)
    {
        var (a, b) = factors[name];
        linears[name].Factorize(a.clone(), b.clone());
        installed.Add(name);
    }

    public void Dispose()
    {
        foreach (var t in originals.Values) t.Dispose();
        foreach (var (a, b) in factors.Values)
        {
            a.Dispose();
            b.Dispose();
        }
        originals.Clear();
        factors.Clear();
    }
}
