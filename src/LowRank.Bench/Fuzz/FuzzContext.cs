namespace LowRank.Bench.Fuzz;

/// <summary>What every family draws on: the seeded random source of the case, its folder, and the run's shared inputs.</summary>
public sealed class FuzzContext(Random random, string caseFolder, string sourceModel, string calibrationText, CachePackageSeed package)
{
    public Random Random { get; } = random;
    public string CaseFolder { get; } = caseFolder;
    public string SourceModel { get; } = sourceModel;
    public string CalibrationText { get; } = calibrationText;
    public CachePackageSeed Package { get; } = package;

    public T Pick<T>(IReadOnlyList<T> items) => items[Random.Next(items.Count)];

    public bool Chance(double p) => Random.NextDouble() < p;

    /// <summary>A fresh copy of the source model in the case folder.</summary>
    public string CopyModel(string name = "model")
    {
        var target = Path.Combine(CaseFolder, name);
        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(SourceModel)) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        return target;
    }

    /// <summary>A command that loads the model: inspect (headers and config), generate (everything) or compress (everything, writes).</summary>
    public (IReadOnlyList<string> Arguments, Func<BoundedResult, string?>? Check, double TimeoutScale) ModelCommand(string model, double compressShare = 0.15)
    {
        var roll = Random.NextDouble();
        if (roll < compressShare)
        {
            var output = Path.Combine(CaseFolder, "out");
            return (["compress", model, "--method", "svd", "--ratio", "0.5", "-o", output, "--device", "cpu", "--no-config", "--progress", "none"],
                _ => Directory.Exists(output) && NonFiniteScan.Problem(output) is { } problem ? $"compress exited 0 and {problem}" : null, 3);
        }
        if (roll < compressShare + 0.3) return (["inspect", model, "--no-config"], null, 1);
        return (["generate", model, "--prompt", "Call me", "--max-new-tokens", "2", "--device", "cpu", "--no-config", "--progress", "none"],
            result => result.Output.Contains("NaN", StringComparison.Ordinal) ? "generate exited 0 and printed NaN" : null, 1);
    }
}
