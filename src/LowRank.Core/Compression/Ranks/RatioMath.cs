namespace LowRank.Compression;

/// <summary>
/// The ratio and rank conventions of ../shared/docs/methods.md, in one place.
/// <para>The compression ratio CR is the fraction of parameters REMOVED from the compressed linears (SVD-LLM's and
/// AdaSVD's convention); the retention is ρ = 1 − CR. A rank-k factorisation of an m×n weight stores k·(m+n)
/// parameters, so the rank that keeps a fraction ρ is <c>k = floor(m·n·ρ / (m+n))</c> (LLaMA-7B at CR 0.2:
/// 1638 for 4096×4096, 2388 for 11008↔4096). A factorisation with <c>k·(m+n) ≥ m·n</c> saves nothing, so that
/// layer stays dense.</para>
/// </summary>
public static class RatioMath
{
    /// <summary>Absorbs the rounding of ρ = 1 − CR (e.g. 1 − 0.2 = 0.7999…) so exact products floor to the integer they are.</summary>
    private const double FloorSlack = 1e-9;

    /// <summary>ρ = 1 − CR, after checking CR against the ratio rule (<see cref="CompressionRatio"/>).</summary>
    public static double Retention(double compressionRatio) => 1.0 - CompressionRatio.Validate(compressionRatio);

    /// <summary><c>floor(m·n·ρ/(m+n))</c>, at least 1 (a rank-0 layer would delete the layer, which no method intends).</summary>
    public static long RankFor(long outFeatures, long inFeatures, double retention)
    {
        if (outFeatures <= 0 || inFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(outFeatures), "shape must be positive");
        var exact = (double)outFeatures * inFeatures * retention / (outFeatures + inFeatures);
        return Math.Max(1, (long)Math.Floor(exact + FloorSlack));
    }

    /// <summary>True when a rank-<paramref name="rank"/> factorisation stores fewer parameters than the dense weight.</summary>
    public static bool FactorizationSaves(long outFeatures, long inFeatures, long rank) =>
        rank * (outFeatures + inFeatures) < outFeatures * inFeatures;

    /// <summary>The largest rank that still saves parameters (the dense break-even is m·n/(m+n)).</summary>
    public static long MaxSavingRank(long outFeatures, long inFeatures) =>
        (outFeatures * inFeatures - 1) / (outFeatures + inFeatures);

    /// <summary>The retention of the smallest factorisation (rank 1): (m+n)/(m·n).</summary>
    public static double MinRetention(long outFeatures, long inFeatures) =>
        (double)(outFeatures + inFeatures) / ((double)outFeatures * inFeatures);

    /// <summary>How a list of retentions is moved back onto the budget after clipping.</summary>
    public enum Redistribution
    {
        /// <summary>Add the same offset to every unclipped value (keeps differences; adaCR's affine rule).</summary>
        Shift,
        /// <summary>Multiply every unclipped value by the same factor (keeps proportions; SVD-LLM V2's loss-proportional rule).</summary>
        Scale,
    }

    /// <summary>
    /// Clips each value into [<paramref name="lower"/>ᵢ, <paramref name="upper"/>ᵢ] and moves the unclipped ones (by a common
    /// shift or scale) until the weighted mean equals <paramref name="target"/> exactly: Σ wᵢ·ρᵢ = target·Σ wᵢ.
    /// With wᵢ = mᵢ·nᵢ that is "the same parameter budget as the uniform allocation". The common offset is found by
    /// bisection (the clipped mean is monotone in it), so clipping that pushes other values out of range is handled too.
    /// </summary>
    public static double[] ClipAndRedistribute(
        IReadOnlyList<double> values, IReadOnlyList<double> weights, IReadOnlyList<double> lower, IReadOnlyList<double> upper,
        double target, Redistribution mode)
    {
        var count = values.Count;
        if (weights.Count != count || lower.Count != count || upper.Count != count) throw new ArgumentException("lengths differ");
        if (count == 0) return [];
        var totalWeight = weights.Sum();
        var reachableLow = Enumerable.Range(0, count).Sum(i => weights[i] * lower[i]) / totalWeight;
        var reachableHigh = Enumerable.Range(0, count).Sum(i => weights[i] * upper[i]) / totalWeight;
        if (target < reachableLow - 1e-12 || target > reachableHigh + 1e-12)
            throw new LrkException(ErrorCodes.BadRatio,
                $"retention {target:F4} cannot be met: the feasible mean retention of these layers is [{reachableLow:F4}, {reachableHigh:F4}]");

        double[] Apply(double offset)
        {
            var result = new double[count];
            for (var i = 0; i < count; i++)
            {
                var moved = mode == Redistribution.Shift ? values[i] + offset : values[i] * offset;
                result[i] = Math.Clamp(moved, lower[i], upper[i]);
            }
            return result;
        }
        double Mean(double[] r)
        {
            var sum = 0.0;
            for (var i = 0; i < count; i++) sum += weights[i] * r[i];
            return sum / totalWeight;
        }

        if (mode == Redistribution.Scale && values.Any(v => v < 0)) throw new ArgumentException("scale redistribution needs non-negative values");
        // Bracket the offset: at lo every value sits at its lower bound, at hi at its upper bound.
        double lo, hi;
        if (mode == Redistribution.Shift)
        {
            lo = Enumerable.Range(0, count).Min(i => lower[i] - values[i]);
            hi = Enumerable.Range(0, count).Max(i => upper[i] - values[i]);
        }
        else
        {
            var positive = values.Where(v => v > 0).ToArray();
            if (positive.Length == 0) return Apply(0).Select((_, i) => Math.Clamp(target, lower[i], upper[i])).ToArray();
            lo = 0;
            hi = Enumerable.Range(0, count).Where(i => values[i] > 0).Max(i => upper[i] / values[i]);
        }
        for (var iteration = 0; iteration < 200; iteration++)
        {
            var mid = 0.5 * (lo + hi);
            if (Mean(Apply(mid)) < target) lo = mid; else hi = mid;
            if (hi - lo <= 1e-15 * Math.Max(1, Math.Abs(hi))) break;
        }
        var final = Apply(0.5 * (lo + hi));
        // Remove the last rounding residue from the unclipped values so the budget holds to machine precision.
        var free = Enumerable.Range(0, count).Where(i => final[i] > lower[i] && final[i] < upper[i]).ToArray();
        var freeWeight = free.Sum(i => weights[i]);
        if (freeWeight > 0)
        {
            var residue = (target - Mean(final)) * totalWeight / freeWeight;
            foreach (var i in free) final[i] = Math.Clamp(final[i] + residue, lower[i], upper[i]);
        }
        return final;
    }
}
