namespace LowRank.Bench;

/// <summary>A LLaMA-2-shaped model size for <see cref="ScaleBenchmark"/>.</summary>
public sealed record ScaleShape(string Name, int Hidden, int Layers, int Heads, int KvHeads, int Ffn, int Vocab)
{
    public static readonly IReadOnlyList<ScaleShape> Known =
    [
        new("7b", 4096, 32, 32, 32, 11008, 32000),
        new("13b", 5120, 40, 40, 40, 13824, 32000),
        new("70b", 8192, 80, 64, 8, 28672, 32000),
        // bench inference on a CPU: large enough that decoding is bound by reading the weights (3.8 GB in fp32).
        new("cpu", 2048, 16, 16, 16, 5504, 32000),
        // A CPU-sized model with the same structure, for tests and dry runs.
        new("tiny", 256, 4, 4, 2, 688, 1000),
    ];

    public static ScaleShape Parse(string name) =>
        Known.FirstOrDefault(s => s.Name.Equals(name.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new LrkException(ErrorCodes.BadArgument, $"unknown shape '{name}' (known: {string.Join(", ", Known.Select(s => s.Name))})");
}
