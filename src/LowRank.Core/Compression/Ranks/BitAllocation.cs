using LowRank.Models;
using LowRank.Quantization;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>One way to store a linear: factors of rank k in a format, or the dense weight (quantized, or fp16).</summary>
public sealed record StorageChoice
{
    /// <summary>Null: the linear stays dense.</summary>
    public long? Rank { get; init; }

    /// <summary>Null: fp16 (a dense linear kept as it is).</summary>
    public QuantFormat? Format { get; init; }

    public required long Bits { get; init; }

    /// <summary>The estimated objective ‖(W − Ŵ)X‖² / ‖W X‖² on the calibration data.</summary>
    public required double Objective { get; init; }

    public override string ToString() =>
        Rank is { } k ? $"rank {k} {Format}" : Format is { } f ? $"dense {f}" : "dense fp16";
}

/// <summary>The allocation of one run: per linear, its choice; with the budget and what it adds up to.</summary>
public sealed record BitAllocationReport
{
    public required double TargetBits { get; init; }
    /// <summary>Σ bits of the choices / Σ out·in, as planned (the artifact's <c>linear_bytes</c> gives what was stored).</summary>
    public required double PlannedBits { get; init; }
    /// <summary>Σ over linears of the estimated relative objectives of the choices.</summary>
    public required double EstimatedObjective { get; init; }
    public required IReadOnlyDictionary<string, string> Choices { get; init; }
    /// <summary>The format each linear is to be quantized in (null: kept in floating point, a dense fp16 choice).</summary>
    public required IReadOnlyDictionary<string, string?> Formats { get; init; }
}

/// <summary>
/// <c>--target-bits B</c>: choose every linear's rank and bit width together under one size budget, Σ stored bits ≤ B ·
/// Σ out·in over the block linears (codes, scales and zero points counted), minimising the sum over linears of the
/// SVD-LLM calibration objective <c>‖(W − Ŵ)X‖² / ‖W X‖²</c>.
/// <para>Candidates for a linear [m, n]: SVD-LLM factors of any rank k stored as int8 or int4 (group size and zero
/// points of the run; <c>8·(bytes(m, k) + bytes(k, n))</c> bits), or the weight kept dense: GPTQ at 8, 4 or 3 bits
/// (zero points on), or fp16. The objective of a candidate:</para>
/// <list type="bullet">
/// <item>factors: the truncation error, exactly <c>Σ_{i&gt;k} σ_i²</c> of the whitened weight W·L (SVD-LLM, Theorem
/// 3.2), plus the quantization error, modelled as proportional to the energy kept, <c>c_f · Σ_{i≤k} σ_i²</c>, with c_f
/// measured for each linear and format by quantizing its factors at one reference rank (the rank that keeps half the
/// parameters) exactly as the quantization pass will (<see cref="FactorQuantizer"/>, GPTQ);</item>
/// <item>dense: GPTQ's objective on W, measured; 0 for fp16.</item>
/// </list>
/// The choice is a multiple-choice knapsack, solved by Lagrangian relaxation: for a price λ every linear takes the
/// candidate minimising objective + λ·bits, and λ is bisected to the cheapest price whose choices fit the budget.
/// Measurements use the original model's inputs (SVD-LLM's profiling); the compression then runs with the chosen
/// ranks and the quantization pass with the chosen formats.
/// </summary>
internal static class BitAllocation
{
    /// <summary>Measured candidates of one linear: its whitened spectrum's energies and the constants c_f.</summary>
    private sealed record Profile(LinearShape Shape, double[] Energy, double Total, IReadOnlyList<(QuantFormat Format, double Constant)> Factors,
        IReadOnlyList<(QuantFormat Format, double Objective)> Dense);

    /// <summary>Formats of factor candidates: int8 and int4 with the run's group size (zero points as the run says).</summary>
    public static IReadOnlyList<QuantFormat> FactorFormats(CompressionOptions options) =>
        [QuantFormat.Int8, QuantFormat.ForBits(4, options.GroupSize, options.ZeroPoints)];

    /// <summary>Formats of dense candidates: GPTQ at 8, 4 and 3 bits (zero points on, as the baselines).</summary>
    public static IReadOnlyList<QuantFormat> DenseFormats(CompressionOptions options) =>
        [QuantFormat.Int8, QuantFormat.ForBits(4, options.GroupSize, options.ZeroPoints), QuantFormat.ForBits(3, options.GroupSize, options.ZeroPoints)];

    /// <summary>Profiles the model, allocates, sets <see cref="CompressionRun.Allocation"/> and returns the rank plan;
    /// the caller then runs SVD-LLM following it.</summary>
    public static RankPlan Plan(CompressionRun run, double targetBits)
    {
        var profiles = new List<Profile>();
        run.SingleStreamPass("allocate", Propagation.Original,
            block => new LinearStatistics(_ => true, precision: run.Options.GramPrecision),
            (block, stats) =>
            {
                foreach (var linear in run.Model.BlockLinears(block))
                {
                    run.Report("allocate", block, $"block {block + 1}/{run.BlockCount}: {linear.Name}");
                    profiles.Add(Measure(run, linear, block, stats.Gram(linear.Name)));
                }
            });
        var (choices, planned, objective) = Choose(profiles, run.Options, targetBits);
        var plan = new RankPlan(0, profiles.Select(p =>
        {
            var choice = choices[p.Shape.Name];
            var full = Math.Min(p.Shape.OutFeatures, p.Shape.InFeatures);
            var dense = choice.Rank is null;
            var rank = choice.Rank ?? full;
            return new ModuleRank(p.Shape.Name, p.Shape.Kind, p.Shape.Block, p.Shape.OutFeatures, p.Shape.InFeatures,
                dense ? 1 : (double)rank * (p.Shape.OutFeatures + p.Shape.InFeatures) / p.Shape.DenseParameters, rank, dense);
        }));
        run.Allocation = new BitAllocationReport
        {
            TargetBits = targetBits,
            PlannedBits = planned,
            EstimatedObjective = objective,
            Choices = choices.ToDictionary(c => c.Key, c => c.Value.ToString(), StringComparer.Ordinal),
            Formats = choices.ToDictionary(c => c.Key, c => c.Value.Format?.ToString(), StringComparer.Ordinal),
        };
        return plan;
    }

    private static Profile Measure(CompressionRun run, LinearWeight linear, int block, Tensor gram)
    {
        using var scope = NewDisposeScope();
        var shape = LinearShape.Of(linear, block);
        var h = gram.to(ScalarType.Float64, run.Device);
        var w = run.WeightOnDevice(linear).to(ScalarType.Float64);
        var total = Math.Max(QuantObjective.Of(w, h), double.Epsilon);
        using var whitening = Whitening.Cholesky(h, run.Options.WhiteningEpsilon);
        var spectrum = SvdLlm.WhitenedSpectrum(w, whitening).to(ScalarType.Float64, CPU);
        var energy = spectrum.square().data<double>().ToArray();
        // The reference rank: half the parameters kept (at least 1, below full rank where possible).
        var full = Math.Min(shape.OutFeatures, shape.InFeatures);
        var reference = Math.Clamp(RatioMath.RankFor(shape.OutFeatures, shape.InFeatures, 0.5), 1, Math.Max(1, full - 1));
        var factorConstants = new List<(QuantFormat, double)>();
        using (var factors = SvdLlm.FactorizeWhitened(w, whitening, reference, run.Algorithm))
        {
            var truncation = QuantObjective.Of(w - factors.Product(), h);
            var kept = energy.Take((int)reference).Sum();
            foreach (var format in FactorFormats(run.Options))
            {
                using var inner = NewDisposeScope();
                using var quantized = FactorQuantizer.Quantize(factors.A, factors.B, format, Quantizer.Gptq, h, w, run.Options.Gptq);
                var added = Math.Max(0, QuantObjective.Of(w - quantized.Product(), h) - truncation);
                factorConstants.Add((format, kept > 0 ? added / kept : 0));
            }
        }
        var dense = new List<(QuantFormat, double)>();
        foreach (var format in DenseFormats(run.Options))
        {
            using var inner = NewDisposeScope();
            using var quantized = Gptq.Quantize(w, h, format, run.Options.Gptq);
            using var rtn = Rtn.Quantize(w, format);
            var objective = Math.Min(QuantObjective.Of(w - quantized.Dequantize(ScalarType.Float64), h), QuantObjective.Of(w - rtn.Dequantize(ScalarType.Float64), h));
            dense.Add((format, objective / total));
        }
        return new Profile(shape, energy, total, factorConstants, dense);
    }

    /// <summary>The Lagrangian choice (see the class comment): per linear the candidate minimising objective + λ·bits,
    /// with λ bisected (on a log scale) to the smallest price that meets the budget.</summary>
    private static (Dictionary<string, StorageChoice> Choices, double PlannedBits, double Objective) Choose(
        IReadOnlyList<Profile> profiles, CompressionOptions options, double targetBits)
    {
        var weights = profiles.Sum(p => p.Shape.DenseParameters);
        var budget = targetBits * weights;
        var candidates = profiles.ToDictionary(p => p.Shape.Name, Candidates, StringComparer.Ordinal);
        var cheapest = candidates.Values.Sum(c => c.Min(x => x.Bits));
        if (cheapest > budget)
            throw new LrkException(ErrorCodes.BadMethodOption,
                $"--target-bits {targetBits}: the smallest storage of every linear takes {cheapest / weights:F3} bits per weight; ask for at least that");

        Dictionary<string, StorageChoice> At(double price) => candidates.ToDictionary(c => c.Key,
            c => c.Value.MinBy(x => x.Objective + price * x.Bits)!, StringComparer.Ordinal);
        double Bits(Dictionary<string, StorageChoice> choice) => choice.Values.Sum(x => (double)x.Bits);

        // Bracket: a price where everything takes its cheapest form, then bisect in log space.
        double low = 0, high = 1e-12;
        while (Bits(At(high)) > budget) high *= 4;
        var best = At(high);
        if (Bits(At(low)) <= budget) best = At(low);
        else
        {
            var lo = Math.Max(high / 4, 1e-300);
            for (var i = 0; i < 200 && high / lo > 1 + 1e-9; i++)
            {
                var mid = Math.Sqrt(lo * high);
                var choice = At(mid);
                if (Bits(choice) <= budget)
                {
                    high = mid;
                    best = choice;
                }
                else lo = mid;
            }
        }
        // The relaxation's choices lie on each linear's convex hull and may leave budget unused: spend it greedily on the
        // upgrades that lower the objective most per bit.
        var spent = Bits(best);
        while (true)
        {
            string? upgrade = null;
            StorageChoice? to = null;
            var bestRate = 0.0;
            foreach (var (name, list) in candidates)
            {
                var current = best[name];
                foreach (var option in list)
                {
                    var extra = option.Bits - current.Bits;
                    var gain = current.Objective - option.Objective;
                    if (extra <= 0 || gain <= 0 || spent + extra > budget) continue;
                    if (gain / extra > bestRate)
                    {
                        bestRate = gain / extra;
                        upgrade = name;
                        to = option;
                    }
                }
            }
            if (upgrade is null) break;
            spent += to!.Bits - best[upgrade].Bits;
            best[upgrade] = to;
        }
        return (best, Bits(best) / weights, best.Values.Sum(c => c.Objective));

        List<StorageChoice> Candidates(Profile p)
        {
            var (m, n) = (p.Shape.OutFeatures, p.Shape.InFeatures);
            var list = new List<StorageChoice> { new() { Bits = 16 * m * n, Objective = 0 } };
            foreach (var (format, objective) in p.Dense) list.Add(new StorageChoice { Format = format, Bits = 8 * format.StorageBytes(m, n), Objective = objective });
            var full = (int)Math.Min(m, n);
            var tail = new double[full + 1];
            for (var k = full - 1; k >= 0; k--) tail[k] = tail[k + 1] + (k < p.Energy.Length ? p.Energy[k] : 0);
            foreach (var (format, constant) in p.Factors)
            {
                for (var k = 1; k < full; k++)
                {
                    var bits = 8 * (format.StorageBytes(m, k) + format.StorageBytes(k, n));
                    if (bits >= 16 * m * n) break;
                    var objective = (tail[k] + constant * (tail[0] - tail[k])) / p.Total;
                    list.Add(new StorageChoice { Rank = k, Format = format, Bits = bits, Objective = objective });
                }
            }
            return list;
        }
    }
}
