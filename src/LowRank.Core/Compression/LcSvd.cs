using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// LC-SVD: block-collaborative low-rank decomposition. There is no public code; this is our design from the method's
/// description ("decompose all linear layers of a transformer block jointly, minimising the error of the whole
/// block's output, and search per-block rank configurations by the block output error under the global budget").
/// <para><b>1. Collaborative refit inside a block.</b> The linears of a block are compressed in execution order, in
/// stages of linears that share an input (LLaMA: [q,k,v] → [o] → [gate,up] → [down]). For stage s, the block runs
/// twice per calibration batch: the ORIGINAL block on the original model's hidden states (giving the target inputs
/// X_o of each linear: what the uncompressed model computes there), and the CURRENT block — its earlier stages
/// already compressed — on the compressed model's hidden states (giving the inputs X the compressed linear will
/// really see). Each linear of the stage then solves the reduced-rank regression
/// <c>min_{rank W' ≤ k} ‖W X_o − W' X‖² + λ‖W' − W‖²</c> in closed form: with <c>H = X Xᵀ + λI = L Lᵀ</c> and
/// <c>C = X_o Xᵀ + λI</c>, the unconstrained optimum is <c>M = W C H⁻¹</c> and the rank-k optimum is the truncated SVD
/// of <c>M L = W C L⁻ᵀ</c> mapped back through L⁻¹: <c>A = U_k Σ_k^½</c>, <c>B = Σ_k^½ V_kᵀ L⁻¹</c>. So every linear
/// absorbs the error of everything upstream of it — earlier blocks AND the earlier linears of its own block — instead
/// of reproducing its own input-output map in isolation (which is what lets errors accumulate inside a block). The
/// ridge term (λ = <see cref="CompressionOptions.LcSvdRidge"/>·tr(XXᵀ)/n) keeps the refit near W in directions the
/// calibration data barely excite; with X = X_o it reduces exactly to SVD-LLM's whitened truncation of
/// <c>W (XXᵀ + λI)^½</c>. This is the optimum AdaSVD's alternating updates move towards, computed directly.</para>
/// <para><b>2. Guard.</b> After the refit the block output error <c>‖f(x_o) − f'(x)‖² / ‖f(x_o)‖²</c> on the calibration
/// batches is compared with that of the plain SVD-LLM factorisation of the same block at the same ranks (whitened by
/// the same block's uncompressed-block inputs); the lower one is kept, so on the calibration data LC-SVD's block error
/// is never above SVD-LLM's.</para>
/// <para><b>3. Error-driven rank search across blocks.</b> Before compressing, one profiling pass over the original model
/// measures, for every block l and every candidate retention ρ in trr + {−0.2, −0.15, …, +0.2} (see
/// <see cref="CompressionOptions.LcSvdSearchOffsets"/>), the relative block output error e_l(ρ) of the whitened
/// truncation at that retention. The per-block retentions then minimise <c>Σ_l e_l(ρ_l)</c> subject to the parameter
/// budget of the uniform allocation (<see cref="AllocateBlocks"/>: a multiple-choice knapsack solved exactly by
/// dynamic programming over budget steps). Blocks whose output error grows fastest with truncation get the capacity.</para>
/// </summary>
public static class LcSvd
{
    public const double DefaultRidge = 1e-3;

    /// <summary>The closed-form reduced-rank ridge regression of part 1 (all fp64).
    /// <paramref name="gram"/> = X Xᵀ (compressed-model inputs); <paramref name="cross"/> = X_o Xᵀ (null: X_o = X).</summary>
    public static LowRankFactors Factorize(Tensor weight, Tensor gram, Tensor? cross, long rank, double ridge, SvdAlgorithm algorithm,
        double epsilon, out WhiteningKind kind)
    {
        using var scope = NewDisposeScope();
        var w = weight.to(float64);
        var h = gram.to(float64);
        h = (h + h.T) * 0.5;
        var n = h.shape[0];
        var lambda = ridge * h.diagonal().mean().item<double>();
        var identity = eye(n, dtype: float64, device: h.device);
        var hRidge = h + lambda * identity;
        var cRidge = (cross?.to(float64) ?? h) + lambda * identity;
        using var whitening = Whitening.Cholesky(hRidge, epsilon);
        kind = whitening.Kind;
        // M L = W C H⁻¹ L = W C L⁻ᵀ  (H = L Lᵀ; the same identity holds for an eigen factor).
        var target = whitening.ApplyInverseTranspose(matmul(w, cRidge));
        using var svd = SvdKernel.Truncate(target, rank, algorithm);
        var (a, b) = svd.BalancedFactors();
        return new LowRankFactors(a, whitening.Unwhiten(b), svd.S.clone());
    }

    /// <summary>
    /// Part 3: chooses one candidate per block minimising <c>Σ_l error[l][c_l]</c> subject to spending no more
    /// parameters than the <paramref name="reference"/> choice (the uniform allocation). Costs are parameter counts;
    /// the DP runs over the budget in units of <paramref name="unit"/> parameters, each cost rounded up to whole units,
    /// so the reference is always feasible and the result can exceed its exact cost by less than one unit per block.
    /// Returns the chosen candidate index per block.
    /// </summary>
    public static int[] AllocateBlocks(IReadOnlyList<double[]> error, IReadOnlyList<long[]> cost, IReadOnlyList<int> reference, long unit)
    {
        var blocks = error.Count;
        if (blocks == 0) return [];
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(unit);
        var capacity = 0;
        for (var l = 0; l < blocks; l++) capacity += Units(cost[l][reference[l]], unit);
        var best = new double[capacity + 1];
        var choice = new int[blocks, capacity + 1];
        Array.Fill(best, 0);
        var current = new double[capacity + 1];
        for (var l = 0; l < blocks; l++)
        {
            Array.Fill(current, double.PositiveInfinity);
            for (var c = 0; c <= capacity; c++)
            {
                for (var option = 0; option < error[l].Length; option++)
                {
                    var units = Units(cost[l][option], unit);
                    if (units > c) continue;
                    var previous = best[c - units];
                    if (double.IsPositiveInfinity(previous)) continue;
                    var value = previous + error[l][option];
                    if (value < current[c])
                    {
                        current[c] = value;
                        choice[l, c] = option;
                    }
                }
            }
            (best, current) = (current, best);
        }
        if (double.IsPositiveInfinity(best[capacity]))
            throw new LrkException(ErrorCodes.BadRatio, "LC-SVD rank search: no candidate configuration fits the parameter budget");
        var result = new int[blocks];
        var remaining = capacity;
        for (var l = blocks - 1; l >= 0; l--)
        {
            result[l] = choice[l, remaining];
            remaining -= Units(cost[l][result[l]], unit);
        }
        return result;
    }

    private static int Units(long parameters, long unit) => (int)((parameters + unit - 1) / unit);
}
