// CA1861: the inline tables of hostile values are the point of these files; one allocation per fuzz case is nothing next to a process start.
#pragma warning disable CA1861
namespace LowRank.Bench.Fuzz;

/// <summary>
/// Mutated command lines: a working command (compress, with and without calibration and eval, generate, inspect,
/// cache prune) with one value replaced by a hostile one, an option dropped, doubled or misspelt, or a stray
/// argument added. Every path is relative to the case folder (the working directory), which holds a copy of the
/// model; no template passes --force, so nothing outside the case folder can be replaced.
/// </summary>
public static class CliMutations
{
    private static readonly string[][] Templates =
    [
        ["compress", "model", "--method", "svd", "--ratio", "0.5", "-o", "out", "--device", "cpu", "--no-config", "--progress", "none"],
        ["compress", "model", "--method", "svd-llm", "--ratio", "0.5", "--calib", "calib.txt", "--samples", "4", "--seq-len", "32", "--calib-start", "0", "-o", "out", "--device", "cpu", "--no-config", "--progress", "none"],
        ["compress", "model", "--method", "svd", "--ratio", "0.4", "--eval", "calib.txt", "--eval-window", "32", "-o", "out", "--device", "cpu", "--no-config", "--progress", "none"],
        ["generate", "model", "--prompt", "Call me", "--max-new-tokens", "2", "--temperature", "0", "--seed", "1", "--device", "cpu", "--no-config", "--progress", "none"],
        ["inspect", "model", "--no-config"],
        ["cache", "prune", "--older-than", "30d", "--max-size", "1GB", "--cache", "cache", "--no-config"],
    ];

    private static readonly string[] Hostile =
    [
        "", " ", "-1", "0", "-0", "1", "1e309", "NaN", "Infinity", "-Infinity", "1000000000", "2147483648", "99999999999999999999",
        "0,4", "0x10", "\uFF11", "1.5", "true", "null", "..", "/", "/proc/self/mem", "/dev/null", "/dev/zero", "model/config.json",
        "model", new string('a', 5000), "\ud800", "--", "-", "npm:no-such-corpus", "cuda", "auto", "fp8", "-o",
    ];

    public static FuzzCase Case(FuzzContext c, int index)
    {
        c.CopyModel();
        File.WriteAllText(Path.Combine(c.CaseFolder, "calib.txt"), c.CalibrationText);
        var args = c.Pick(Templates).ToList();
        var command = args[0] == "cache" ? "cache " + args[1] : args[0];
        var options = Enumerable.Range(0, args.Count).Where(i => args[i].StartsWith('-')).ToList();
        string mutation;
        switch (c.Random.Next(10))
        {
            case < 6:
            {
                // A value: the token after an option that takes one, or the positional model.
                var slots = options.Where(i => i + 1 < args.Count && !args[i + 1].StartsWith('-')).Select(i => i + 1).Append(1).ToList();
                var slot = c.Pick(slots);
                var name = slot == 1 ? "<model>" : args[slot - 1];
                args[slot] = c.Pick(Hostile);
                mutation = $"value {name}";
                break;
            }
            case 6:
            {
                var i = c.Pick(options);
                var name = args[i];
                var count = i + 1 < args.Count && !args[i + 1].StartsWith('-') ? 2 : 1;
                args.RemoveRange(i, count);
                mutation = $"dropped {name}";
                break;
            }
            case 7:
            {
                var i = c.Pick(options);
                args.Add(args[i]);
                if (i + 1 < args.Count - 1 && !args[i + 1].StartsWith('-')) args.Add(c.Pick(Hostile));
                mutation = $"doubled {args[i]}";
                break;
            }
            case 8:
            {
                var i = c.Pick(options);
                var name = args[i];
                args[i] = c.Pick(new[] { name.ToUpperInvariant(), name[..^1], name + "s", "-" + name.TrimStart('-'), name + "=1" });
                mutation = $"misspelt {name}";
                break;
            }
            default:
                args.Insert(c.Random.Next(1, args.Count + 1), c.Pick(new[] { "--no-such-option", "stray", "--set", "Nonsense=1", "--json", "-v", "diag" }));
                mutation = "stray argument";
                break;
        }
        var output = Path.Combine(c.CaseFolder, "out");
        return new FuzzCase(index, "cli", $"{command}: {mutation}", args, c.CaseFolder)
        {
            Check = result =>
                result.Output.Contains("NaN", StringComparison.Ordinal) && args[0] == "compress" ? "compress exited 0 and printed NaN"
                : Directory.Exists(output) && NonFiniteScan.Problem(output) is { } problem ? $"exited 0 and {problem}"
                : null,
            TimeoutScale = args[0] is "compress" or "generate" ? 3 : 1, // a legitimate --max-new-tokens runs to the context length
        };
    }
}
