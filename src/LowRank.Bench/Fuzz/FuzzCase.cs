namespace LowRank.Bench.Fuzz;

/// <summary>
/// One prepared case: its family and mutation (for the counts), the tool arguments to run in
/// <see cref="Folder"/>, and a check of an exit-0 result (null = fine, else why the result is wrong).
/// </summary>
public sealed record FuzzCase(int Index, string Family, string Mutation, IReadOnlyList<string> Arguments, string Folder)
{
    public Func<BoundedResult, string?>? Check { get; init; }

    /// <summary>Extra time allowed (a case that compresses needs more than one that only loads).</summary>
    public double TimeoutScale { get; init; } = 1;
}
