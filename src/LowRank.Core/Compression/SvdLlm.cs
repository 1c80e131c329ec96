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

    /// <summary>
    /// SVD-LLM on every compressible linear of a block, one at a time so each one's fp64 temporaries are freed before the
    /// next: one Cholesky per distinct Gram (q/k/v and gate/up share theirs, and come one after another), the truncation,
    /// then <paramref name="apply"/> with the factors (disposed after it returns). <paramref name="gramOf"/> gives each
    /// linear's whitening Gram.
    /// </summary>
    internal static void FactorizeBlock(CompressionRun run, IReadOnlyList<LinearWeight> linears, Func<LinearWeight, Tensor> gramOf,
        Action<LinearWeight, LowRankFactors, WhiteningKind> apply)
    {
        Tensor? currentGram = null;
        Whitening? whitening = null;
        try
        {
            foreach (var linear in linears)
            {
                using var scope = NewDisposeScope();
                var gram = gramOf(linear);
                if (!ReferenceEquals(gram, currentGram))
                {
                    whitening?.Dispose();
                    whitening = null;
                    whitening = Whitening.Cholesky(gram, run.Options.WhiteningEpsilon);
                    currentGram = gram;
                }
                using var factors = FactorizeWhitened(run.WeightOnDevice(linear), whitening!, run.Plan[linear.Name].Rank, run.Algorithm);
                apply(linear, factors, whitening!.Kind);
            }
        }
        finally
        {
            whitening?.Dispose();
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
            (block, stats) => FactorizeBlock(run, run.Compressible(block).ToArray(), linear => stats.Gram(linear.Name),
                (linear, factors, kind) => run.Apply(linear, factors, kind.ToString())),
            overlappable: true);
    }
}
