using LowRank.Models;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// SVD-LLM (Wang et al., 2024, "SVD-LLM: Truncation-aware Data Whitening for Large Language Model Compression").
/// With the input Gram <c>H = X Xᵀ = L Lᵀ</c> (Cholesky, fp64; Eq. 4), the SVD of the whitened weight
/// <c>W L = U Σ Vᵀ</c> has the property that dropping σ_i costs exactly σ_i in <c>‖(W − W')X‖_F</c> (Theorem 3.1–3.2),
/// so keeping the top k is optimal for the calibration data. The factors are mapped back through L⁻¹ (Eq. 6):
/// <c>A = U_k Σ_k^½</c>, <c>B = Σ_k^½ V_kᵀ L⁻¹</c>.
/// Non-PD Grams (too few tokens, dead channels) follow <see cref="Whitening.Cholesky"/>'s documented fallback.
/// </summary>
public static class SvdLlm
{
    /// <summary>Default ε of the whitening fallbacks (relative shift/clamp; see <see cref="Whitening"/>).</summary>
    public const double DefaultWhiteningEpsilon = 1e-8;

    public static LowRankFactors Factorize(Tensor weight, Tensor gram, long rank, SvdAlgorithm algorithm, double epsilon, out WhiteningKind kind)
    {
        using var whitening = Whitening.Cholesky(gram, epsilon);
        kind = whitening.Kind;
        return FactorizeWhitened(weight, whitening, rank, algorithm);
    }

    /// <summary>Truncated SVD of <c>W S</c> mapped back through S⁻¹; shared by every whitening-based method.</summary>
    public static LowRankFactors FactorizeWhitened(Tensor weight, Whitening whitening, long rank, SvdAlgorithm algorithm)
    {
        using var scope = NewDisposeScope();
        var whitened = whitening.Whiten(weight);
        using var svd = SvdKernel.Truncate(whitened, rank, algorithm);
        var (a, b) = svd.BalancedFactors();
        return new LowRankFactors(a, whitening.Unwhiten(b), svd.S.clone());
    }

    /// <summary><see cref="FactorizeWhitened"/> for several weights at once (their SVDs run concurrently where the kernel
    /// allows, <see cref="SvdKernel.TruncateMany"/>). The whitened matrices of all of them are held together.</summary>
    public static LowRankFactors[] FactorizeWhitenedMany(IReadOnlyList<(Tensor Weight, Whitening Whitening, long Rank)> items, SvdAlgorithm algorithm)
    {
        using var scope = NewDisposeScope();
        var whitened = items.Select(item => (item.Whitening.Whiten(item.Weight), item.Rank)).ToArray();
        var svds = SvdKernel.TruncateMany(whitened, algorithm);
        try
        {
            return items.Select((item, i) =>
            {
                var (a, b) = svds[i].BalancedFactors();
                return new LowRankFactors(a, item.Whitening.Unwhiten(b), svds[i].S.clone());
            }).ToArray();
        }
        finally
        {
            foreach (var svd in svds) svd.Dispose();
        }
    }

    /// <summary>
    /// SVD-LLM on every compressible linear of a block: one Cholesky per distinct Gram (q/k/v and gate/up share theirs),
    /// then all truncations together. <paramref name="gramOf"/> gives each linear's whitening Gram.
    /// </summary>
    internal static IReadOnlyList<(LinearWeight Linear, LowRankFactors Factors, WhiteningKind Kind)> FactorizeBlock(
        CompressionRun run, IReadOnlyList<LinearWeight> linears, Func<LinearWeight, Tensor> gramOf)
    {
        var whitenings = new Dictionary<Tensor, Whitening>(ReferenceEqualityComparer.Instance);
        try
        {
            using var scope = NewDisposeScope();
            var items = linears.Select(linear =>
            {
                var gram = gramOf(linear);
                if (!whitenings.TryGetValue(gram, out var whitening))
                    whitenings[gram] = whitening = Whitening.Cholesky(gram, run.Options.WhiteningEpsilon);
                return (run.WeightOnDevice(linear), whitening, run.Plan[linear.Name].Rank);
            }).ToArray();
            var factors = FactorizeWhitenedMany(items, run.Algorithm);
            return linears.Select((linear, i) => (linear, factors[i], items[i].whitening.Kind)).ToArray();
        }
        finally
        {
            foreach (var whitening in whitenings.Values) whitening.Dispose();
        }
    }

    /// <summary>The singular values of the whitened weight (for losses and allocation), without building factors.</summary>
    public static Tensor WhitenedSpectrum(Tensor weight, Whitening whitening)
    {
        using var scope = NewDisposeScope();
        var whitened = whitening.Whiten(weight);
        var rows = whitened.shape[0];
        var cols = whitened.shape[1];
        // Only the values are needed: eigvalsh of the smaller Gram is enough (and fast on every device).
        var gram = rows <= cols ? matmul(whitened, whitened.T) : matmul(whitened.T, whitened);
        var values = linalg.eigvalsh((gram + gram.T) * 0.5).flip(0).clamp_min(0).sqrt();
        return values.MoveToOuterDisposeScope();
    }

    /// <summary>Pipeline (SVD-LLM's low-resource profiling): block by block, Grams of every linear's input, Cholesky
    /// whitening, truncation. The stream advances through the original block by default, as the published code does.</summary>
    internal static void Run(CompressionRun run)
    {
        run.SingleStreamPass("compress", run.Options.EffectivePropagation,
            block => new LinearStatistics(_ => true, precision: run.Options.GramPrecision),
            (block, stats) =>
            {
                foreach (var (linear, factors, kind) in FactorizeBlock(run, run.Compressible(block).ToArray(), linear => stats.Gram(linear.Name)))
                {
                    using (factors) run.Apply(linear, factors, kind.ToString());
                }
            });
    }
}
