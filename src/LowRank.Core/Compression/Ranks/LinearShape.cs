using LowRank.Models;

namespace LowRank.Compression;

/// <summary>One block linear as the planner sees it: its checkpoint name, kind (q_proj…), block index and shape.</summary>
public sealed record LinearShape(string Name, string Kind, int Block, long OutFeatures, long InFeatures)
{
    public long DenseParameters => OutFeatures * InFeatures;

    public static LinearShape Of(LinearWeight linear, int block) => new(linear.Name, linear.Kind, block, linear.OutFeatures, linear.InFeatures);
}
