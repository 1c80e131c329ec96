namespace LowRank.Compression;

/// <summary>The rank chosen for one linear: <see cref="Dense"/> when factorising at that retention would save nothing.</summary>
public sealed record ModuleRank(string Name, string Kind, int Block, long OutFeatures, long InFeatures, double Retention, long Rank, bool Dense)
{
    public long DenseParameters => OutFeatures * InFeatures;

    /// <summary>Weight parameters stored after compression (bias excluded; it is unchanged).</summary>
    public long Parameters => Dense ? DenseParameters : Rank * (OutFeatures + InFeatures);

    /// <summary>The rank at retention ρ with the dense fallback of <see cref="RatioMath"/>.</summary>
    /// <param name="multiple">Round the rank down to a multiple of this (at least one multiple, at most the full rank):
    /// fp16 tensor-core GEMMs want dimensions that are multiples of 8. 1 = the exact rank of the retention.</param>
    public static ModuleRank At(LinearShape shape, double retention, int multiple = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(multiple);
        var rank = RatioMath.RankFor(shape.OutFeatures, shape.InFeatures, retention);
        if (multiple > 1) rank = Math.Min(Math.Max(multiple, rank / multiple * multiple), Math.Min(shape.OutFeatures, shape.InFeatures));
        var dense = !RatioMath.FactorizationSaves(shape.OutFeatures, shape.InFeatures, rank);
        return new ModuleRank(shape.Name, shape.Kind, shape.Block, shape.OutFeatures, shape.InFeatures, retention,
            dense ? Math.Min(shape.OutFeatures, shape.InFeatures) : rank, dense);
    }
}
