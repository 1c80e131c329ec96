using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace LowRank.Bench.Fuzz;

/// <summary>What the fuzz run is told: how many cases, the seed, the bounds of each case, and where things are.</summary>
public sealed record FuzzOptions(int Cases, int Seed, string SourceModel, string ToolProgram, IReadOnlyList<string> ToolPrefix)
{
    public TimeSpan CaseTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public long RssCapBytes { get; init; } = 3L << 30;
    /// <summary>Stop starting cases after this long (the report says how many ran).</summary>
    public TimeSpan? TimeLimit { get; init; }
    public IReadOnlyList<string>? Families { get; init; }
    public string? WorkFolder { get; init; }
    public bool KeepFailures { get; init; }
    /// <summary>Index of the first case (a long run can be split over processes: 0–499 and 500–999 are the cases of one 0–999 run).</summary>
    public int First { get; init; }
}

/// <summary>One case's outcome, as counted.</summary>
public sealed record FuzzOutcome(int Index, string Family, string Mutation, FuzzClass Class, int? ExitCode, string Detail, double Seconds, long PeakRssBytes);

/// <param name="HarnessErrors">Cases the harness itself could not prepare or run (its own bug; each is reported, none may occur).</param>
public sealed record FuzzReport(int Seed, int Requested, IReadOnlyList<FuzzOutcome> Outcomes, IReadOnlyList<string> HarnessErrors, bool SourceUnchanged, TimeSpan Elapsed)
{
    public int Count(FuzzClass c) => Outcomes.Count(o => o.Class == c);
    public IEnumerable<FuzzOutcome> Failures => Outcomes.Where(o => FuzzClasses.IsFailure(o.Class));
    public bool Clean => SourceUnchanged && HarnessErrors.Count == 0 && !Failures.Any();
}

/// <summary>
/// The project's own fuzzer: seeded mutations of a model folder (safetensors header and data,
/// config.json, tokenizer files, a sharded layout's index), of command lines and of remote cache entry packages,
/// each run through the real tool as a child process bounded in time and resident memory, and classified
/// (<see cref="FuzzClass"/>). Case i of seed s is the same case on every machine; families take turns.
/// </summary>
public static partial class FuzzHarness
{
    public static readonly IReadOnlyList<string> AllFamilies = ["safetensors-header", "safetensors-data", "config", "tokenizer", "shard-index", "cli", "remote-cache-package"];

    public static FuzzReport Run(FuzzOptions options, Action<FuzzOutcome>? onCase = null, Action<string>? onHarnessError = null, CancellationToken cancellation = default)
    {
        var families = options.Families is { Count: > 0 } f ? f : AllFamilies;
        foreach (var family in families)
            if (!AllFamilies.Contains(family)) throw new LrkException(ErrorCodes.BadArgument, $"unknown fuzz family '{family}'; use {string.Join(", ", AllFamilies)}");
        var work = options.WorkFolder ?? Path.Combine(Path.GetTempPath(), $"lowrank-fuzz-{options.Seed}-{Guid.NewGuid():N}"[..40]);
        Directory.CreateDirectory(work);
        var clock = Stopwatch.StartNew();
        var sourceHash = TreeHash(options.SourceModel);
        var outcomes = new List<FuzzOutcome>();
        var harnessErrors = new List<string>();
        try
        {
            var package = CachePackageSeed.Create(work, options.SourceModel, options.Seed);
            var calibration = CalibrationText(options.Seed);
            for (var i = options.First; i < options.First + options.Cases; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                if (options.TimeLimit is { } limit && clock.Elapsed > limit) break;
                var family = families[i % families.Count];
                var folder = Path.Combine(work, $"case-{i:D5}");
                var context = new FuzzContext(new Random(unchecked(options.Seed * 1_000_003 + i)), folder, options.SourceModel, calibration, package);
                Directory.CreateDirectory(folder);
                FuzzOutcome outcome;
                try
                {
                    outcome = Execute(options, Prepare(context, family, i));
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    var error = $"case {i} ({family}): {e.GetType().Name}: {e.Message}";
                    harnessErrors.Add(error);
                    onHarnessError?.Invoke(error);
                    continue;
                }
                outcomes.Add(outcome);
                onCase?.Invoke(outcome);
                if (!(options.KeepFailures && FuzzClasses.IsFailure(outcome.Class))) Delete(folder);
            }
        }
        finally
        {
            if (!options.KeepFailures) Delete(work);
        }
        return new FuzzReport(options.Seed, options.Cases, outcomes, harnessErrors, TreeHash(options.SourceModel) == sourceHash, clock.Elapsed);
    }

    private static FuzzCase Prepare(FuzzContext c, string family, int index)
    {
        if (family == "cli") return CliMutations.Case(c, index);
        if (family == "remote-cache-package") return CachePackageMutations.Case(c, index);
        var model = c.CopyModel();
        var mutation = family switch
        {
            "safetensors-header" => ModelFileMutations.SafeTensorsHeader(c, model),
            "safetensors-data" => ModelFileMutations.SafeTensorsData(c, model),
            "config" => ModelFileMutations.Config(c, model),
            "tokenizer" => ModelFileMutations.Tokenizer(c, model),
            _ => ModelFileMutations.ShardIndex(c, model),
        };
        var (args, check, scale) = c.ModelCommand(model, family == "safetensors-data" ? 0.3 : 0.15);
        return new FuzzCase(index, family, $"{mutation} ({args[0]})", args, c.CaseFolder) { Check = check, TimeoutScale = scale };
    }

    private static FuzzOutcome Execute(FuzzOptions options, FuzzCase fuzzCase)
    {
        var environment = new Dictionary<string, string?>
        {
            ["LOWRANK_CACHE"] = Path.Combine(fuzzCase.Folder, "cache"),
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["LOWRANK_DEBUG"] = null,
        };
        var result = BoundedRun.Run(options.ToolProgram, [.. options.ToolPrefix, .. fuzzCase.Arguments], fuzzCase.Folder, environment,
            options.CaseTimeout * fuzzCase.TimeoutScale, options.RssCapBytes);
        var (cls, detail) = Classify(fuzzCase, result);
        return new FuzzOutcome(fuzzCase.Index, fuzzCase.Family, fuzzCase.Mutation, cls, result.ExitCode, detail, result.Elapsed.TotalSeconds, result.PeakRssBytes);
    }

    /// <summary>The classes, in order: memory and time first (the tool was killed), then the exit code and what it printed.</summary>
    public static (FuzzClass Class, string Detail) Classify(FuzzCase fuzzCase, BoundedResult result)
    {
        if (result.MemoryExceeded) return (FuzzClass.MemoryBlowUp, $"resident memory passed the cap ({result.PeakRssBytes >> 20} MiB)");
        if (result.TimedOut) return (FuzzClass.Hang, $"still running after {result.Elapsed.TotalSeconds:F0} s");
        var output = result.Output;
        var code = LrkCode().Match(output) is { Success: true } m ? m.Value : null;
        if (output.Contains("LRK0001", StringComparison.Ordinal) || output.Contains("Unhandled exception", StringComparison.Ordinal) || result.ExitCode == ExitCodes.Internal)
            return (FuzzClass.Crash, FirstLine(output, "LRK0001") ?? FirstLine(output, "Unhandled exception") ?? $"exit {result.ExitCode}");
        if (result.ExitCode == 0)
            return fuzzCase.Check?.Invoke(result) is { } wrong ? (FuzzClass.SilentWrong, wrong) : (FuzzClass.Accepted, "");
        if (result.ExitCode is >= 1 and <= 3 && code is not null) return (FuzzClass.CodedError, FirstLine(output, code) ?? code);
        return (FuzzClass.Crash, $"exit {result.ExitCode} without an LRK code: {FirstLine(output, "") ?? "(no output)"}");
    }

    private static string? FirstLine(string output, string containing)
    {
        var line = output.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0 && l.Contains(containing, StringComparison.Ordinal));
        return line is null ? null : line.Length > 240 ? line[..240] + "…" : line;
    }

    /// <summary>SHA-256 over every file's relative path and bytes: the source model must be the same after the run.</summary>
    public static string TreeHash(string folder)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetRelativePath(folder, file) + "\n"));
            sha.AppendData(File.ReadAllBytes(file));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>A few KB of seeded English-like text for calibration and eval options.</summary>
    private static string CalibrationText(int seed)
    {
        var words = "call me ishmael some years ago never mind how long precisely having little or no money in my purse and nothing particular to interest me on shore i thought i would sail about a little and see the watery part of the world".Split(' ');
        var random = new Random(seed);
        var text = new System.Text.StringBuilder();
        for (var p = 0; p < 60; p++)
        {
            for (var w = 0; w < 80; w++) text.Append(words[random.Next(words.Length)]).Append(w % 12 == 11 ? ". " : " ");
            text.Append("\n\n");
        }
        return text.ToString();
    }

    private static void Delete(string folder)
    {
        try
        {
            LowRank.Cache.ModelCache.DeleteTree(folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A FIFO or a read-only leftover: try again by hand, file by file, and give up quietly (temp folder).
            foreach (var entry in Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories).Reverse())
            {
                try { if (File.Exists(entry)) File.Delete(entry); else Directory.Delete(entry, true); } catch (Exception inner) when (inner is IOException or UnauthorizedAccessException) { }
            }
        }
    }

    [GeneratedRegex(@"LRK(?!0001)\d{4}")]
    private static partial Regex LrkCode();
}
