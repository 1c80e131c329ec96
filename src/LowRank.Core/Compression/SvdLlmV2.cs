using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// SVD-LLM V2 (Wang et al., 2025, "SVD-LLM V2: Optimizing Singular Value Truncation for Large Language Model
/// Compression").
/// <list type="bullet">
/// <item>Whitening by eigendecomposition (§3.3): <c>H = Q Λ Qᵀ</c>, factor <c>W Q Λ^½ = U Σ Vᵀ</c>,
/// <c>A = U_k Σ_k^½</c>, <c>B = Σ_k^½ V_kᵀ Λ^-½ Qᵀ</c>, with eigenvalues below ε·λ_max clamped. Same optimum as the
/// Cholesky route, no failure on singular H.</item>
/// <item>Heterogeneous ratio allocation (§3.2): matrices are grouped by kind (all q_proj, all k_proj, …); each one's
/// theoretical truncation loss at the uniform rank, <c>sqrt(Σ_{j&gt;k} σ_j²)</c> of the whitened matrix, is computed;
/// within a group each matrix gets a retention proportional to its loss with the group mean held at the target,
/// clipped to the feasible ranks (rank ≥ 1, at most dense) and re-scaled so the group budget stays exact.</item>
/// </list>
/// </summary>
public static class SvdLlmV2
{
    public static LowRankFactors Factorize(Tensor weight, Tensor gram, long rank, SvdAlgorithm algorithm, double epsilon)
    {
        using var whitening = Whitening.Eigen(gram, epsilon);
        return SvdLlm.FactorizeWhitened(weight, whitening, rank, algorithm);
    }

    /// <summary>The loss of one matrix at the uniform rank, as used by <see cref="Allocate"/>.</summary>
    public sealed record MatrixLoss(LinearShape Linear, double Loss);

    /// <summary>Retention per linear: ∝ truncation loss within each kind group, group mean = <paramref name="targetRetention"/>.</summary>
    public static Dictionary<string, double> Allocate(IReadOnlyList<MatrixLoss> losses, double targetRetention)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var group in losses.GroupBy(l => l.Linear.Kind, StringComparer.Ordinal))
        {
            var members = group.ToArray();
            var meanLoss = members.Average(m => m.Loss);
            var proportional = members.Select(m => meanLoss > 0 ? targetRetention * m.Loss / meanLoss : targetRetention).ToArray();
            var allocated = RatioMath.ClipAndRedistribute(
                proportional,
                members.Select(m => (double)m.Linear.DenseParameters).ToArray(),
                members.Select(m => RatioMath.MinRetention(m.Linear.OutFeatures, m.Linear.InFeatures)).ToArray(),
                members.Select(_ => 1.0).ToArray(),
                targetRetention,
                RatioMath.Redistribution.Scale);
            for (var i = 0; i < members.Length; i++) result[members[i].Linear.Name] = allocated[i];
        }
        return result;
    }

    /// <summary>Pipeline: (1) profiling pass over the original model: Grams, eigen whitening and the whitened spectrum of
    /// every linear, its loss at the uniform rank; (2) allocation; (3) the compression pass with the allocated ranks.
    /// The Grams are recomputed in (3) rather than kept, so memory stays at one block.</summary>
    internal static void Run(CompressionRun run)
    {
        if (run.Options.SvdLlmV2Allocation)
        {
            var losses = new List<MatrixLoss>();
            var uniform = run.Plan;
            run.SingleStreamPass("profile", Propagation.Original,
                block => new LinearStatistics(_ => true, precision: run.Options.GramPrecision),
                (block, stats) =>
                {
                    foreach (var linear in run.Model.BlockLinears(block))
                    {
                        using var scope = NewDisposeScope();
                        using var whitening = Whitening.Eigen(stats.Gram(linear.Name).to(run.Device), run.Options.WhiteningEpsilon);
                        var spectrum = SvdLlm.WhitenedSpectrum(run.WeightOnDevice(linear), whitening);
                        var rank = uniform[linear.Name];
                        losses.Add(new MatrixLoss(LinearShape.Of(linear, block), rank.Dense ? 0 : LowRankFactors.TailNorm(spectrum, rank.Rank)));
                    }
                });
            run.Follow(RankPlan.FromRetentions(run.Shapes, Allocate(losses, uniform.TargetRetention), run.Options.Ratio, run.Options.RankMultiple));
        }
        run.SingleStreamPass("compress", run.Options.EffectivePropagation,
            block => new LinearStatistics(_ => true, precision: run.Options.GramPrecision),
            (block, stats) =>
            {
                foreach (var linear in run.Compressible(block).ToArray())
                {
                    using var scope = NewDisposeScope();
                    using var factors = Factorize(run.WeightOnDevice(linear), stats.Gram(linear.Name), run.Plan[linear.Name].Rank,
                        run.Algorithm, run.Options.WhiteningEpsilon);
                    run.Apply(linear, factors, nameof(WhiteningKind.Eigen));
                }
            });
    }
}
