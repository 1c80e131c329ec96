using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

public static partial class AdaSvd
{
    /// <summary>A block's starting truncations (SVD-LLM whitened with the original model's Grams), by linear.</summary>
    private sealed class StartFactors : IDisposable
    {
        private readonly Dictionary<string, LowRankFactors> byLinear = new(StringComparer.Ordinal);

        public int Count => byLinear.Count;

        public LowRankFactors Of(string linear) => byLinear[linear];

        public void Factorize(CompressionRun run, IReadOnlyList<LinearWeight> linears, BlockGrams grams) =>
            SvdLlm.FactorizeBlock(run, linears, linear => grams.Of(linear.Name), (linear, factors, kind) => byLinear[linear.Name] = factors.Detach(kind));

        public void Dispose()
        {
            foreach (var factors in byLinear.Values) factors.Dispose();
            byLinear.Clear();
        }
    }
}
