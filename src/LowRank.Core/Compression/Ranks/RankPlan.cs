using LowRank.Models;

namespace LowRank.Compression;

/// <summary>
/// The rank of every block linear of a model for one compression run, and the parameter accounting around it.
/// Uniform plans give every linear the same retention; allocating methods (SVD-LLM V2, AdaSVD adaCR, LC-SVD) give
/// per-linear retentions whose parameter-weighted mean is the target (see <see cref="RatioMath.ClipAndRedistribute"/>).
/// </summary>
public sealed class RankPlan
{
    private readonly Dictionary<string, ModuleRank> byName;

    public RankPlan(double requestedRatio, IEnumerable<ModuleRank> modules)
    {
        // 0: the quantization-only methods, which keep every linear dense (Dense); else checked where it was parsed.
        RequestedRatio = requestedRatio;
        Modules = modules.ToArray();
        byName = Modules.ToDictionary(m => m.Name, StringComparer.Ordinal);
    }

    public double RequestedRatio { get; }

    public double TargetRetention => 1.0 - RequestedRatio;

    public IReadOnlyList<ModuleRank> Modules { get; }

    public ModuleRank this[string name] => byName.TryGetValue(name, out var rank)
        ? rank
        : throw new KeyNotFoundException($"no rank planned for linear '{name}'");

    public static RankPlan Uniform(IEnumerable<LinearShape> linears, double ratio, int rankMultiple = 1)
    {
        var retention = RatioMath.Retention(ratio);
        return new RankPlan(ratio, linears.Select(l => ModuleRank.At(l, retention, rankMultiple)));
    }

    /// <summary>Every linear kept dense (the quantization-only methods): requested ratio 0.</summary>
    public static RankPlan Dense(IEnumerable<LinearShape> linears) =>
        new(0, linears.Select(l => new ModuleRank(l.Name, l.Kind, l.Block, l.OutFeatures, l.InFeatures, 1, Math.Min(l.OutFeatures, l.InFeatures), true)));

    /// <summary>A plan from per-linear retentions (values ≥ the break-even retention give dense layers).</summary>
    public static RankPlan FromRetentions(IEnumerable<LinearShape> linears, IReadOnlyDictionary<string, double> retentions, double ratio, int rankMultiple = 1) =>
        new(ratio, linears.Select(l => ModuleRank.At(l, retentions[l.Name], rankMultiple)));

    public long LinearParametersBefore => Modules.Sum(m => m.DenseParameters);

    public long LinearParametersAfter => Modules.Sum(m => m.Parameters);

    public double AchievedLinearRatio => 1.0 - (double)LinearParametersAfter / LinearParametersBefore;

    /// <summary>The accounting with <paramref name="otherParameters"/> (embeddings, norms, lm_head when untied, biases),
    /// which compression leaves unchanged, added to both sides.</summary>
    public RatioSummary Summarize(long otherParameters)
    {
        var before = LinearParametersBefore;
        var after = LinearParametersAfter;
        return new RatioSummary(RequestedRatio, before, after, 1.0 - (double)after / before,
            before + otherParameters, after + otherParameters, 1.0 - (double)(after + otherParameters) / (before + otherParameters),
            Modules.Count(m => m.Dense));
    }

    /// <summary>Parameters of a model that are not block-linear weights: <see cref="IDecoderModel.OtherTensors"/> (a tensor
    /// shared by two names, e.g. tied embeddings, counted once) plus the biases of the block linears.</summary>
    public static long OtherParameters(IDecoderModel model)
    {
        var seen = new HashSet<IntPtr>();
        long total = 0;
        var tied = model.Config.TieWordEmbeddings;
        foreach (var (name, tensor) in model.OtherTensors)
        {
            if (!seen.Add(tensor.Handle)) continue;
            // A loader may expose lm_head.weight as its own tensor even when tied; the file and the model hold it once.
            if (tied && name.EndsWith("lm_head.weight", StringComparison.Ordinal)) continue;
            total += tensor.numel();
        }
        for (var block = 0; block < model.BlockCount; block++)
        {
            foreach (var linear in model.BlockLinears(block)) total += linear.Bias?.numel() ?? 0;
        }
        return total;
    }
}
