using System.CommandLine;
using System.Globalization;
using System.Reflection;
using LowRank.Bench.Fuzz;

namespace LowRank.Tool.Commands;

/// <summary>
/// <c>dotnet lowrank bench fuzz --cases N --seed S</c>: runs the project's fuzzer (<see cref="FuzzHarness"/>) against
/// this very tool, as child processes, and prints the counts per class and per mutation family. Exit 3 when any
/// case crashed, hung, blew up its memory or gave a silent wrong result, or the source model changed.
/// </summary>
public static class FuzzCommand
{
    public static Command Create()
    {
        var cases = new Option<int>("--cases") { Description = "Number of cases", DefaultValueFactory = _ => 100 };
        var seed = new Option<int>("--seed") { Description = "Seed: case i of seed S is the same case everywhere", DefaultValueFactory = _ => 1 };
        var model = new Option<string>("--model") { Description = "Source model folder to mutate copies of (single-file safetensors, tokenizer.json, vocab.json, merges.txt)", DefaultValueFactory = _ => Path.Combine("models", "llama-moby") };
        var timeout = new Option<int>("--timeout") { Description = "Seconds a case may run (compressing cases get 3×) before it counts as a hang", DefaultValueFactory = _ => 60 };
        var rssCap = new Option<string>("--rss-cap") { Description = "Resident memory a case may use before it counts as a memory blow-up", DefaultValueFactory = _ => "3GB" };
        var timeLimit = new Option<double?>("--time-limit") { Description = "Minutes after which no new case starts (the counts say how many ran)" };
        var families = new Option<string?>("--families") { Description = $"Comma-separated families (default all): {string.Join(", ", FuzzHarness.AllFamilies)}" };
        var keep = new Option<bool>("--keep-failures") { Description = "Keep the folders of failing cases (and the work folder) to reproduce them" };
        var work = new Option<string?>("--work") { Description = "Work folder (default: a new folder under the temp folder)" };
        var verbose = new Option<bool>("--each") { Description = "Print one line per case" };
        var json = CommonOptions.Json();
        var command = new Command("fuzz", "Fuzz the tool with seeded mutations of model files, command lines and remote cache packages; count coded errors, crashes, hangs, memory blow-ups, accepted and silent wrong results.")
        {
            cases, seed, model, timeout, rssCap, timeLimit, families, keep, work, verbose, json,
        };
        command.SetAction((parse, cancellation) =>
        {
            var source = Path.GetFullPath(parse.GetValue(model)!);
            if (!File.Exists(Path.Combine(source, "model.safetensors")) || !File.Exists(Path.Combine(source, "config.json")))
                throw new LrkException(ErrorCodes.ModelNotFound, $"{source} is not a single-file safetensors model folder (model.safetensors, config.json)");
            if (parse.GetValue(cases) is < 1 or > 1_000_000) throw new LrkException(ErrorCodes.BadArgument, "--cases: 1 to 1000000");
            if (parse.GetValue(timeout) is < 1 or > 86_400) throw new LrkException(ErrorCodes.BadArgument, "--timeout: 1 to 86400 seconds");
            var (program, prefix) = Self();
            var options = new FuzzOptions(parse.GetValue(cases), parse.GetValue(seed), source, program, prefix)
            {
                CaseTimeout = TimeSpan.FromSeconds(parse.GetValue(timeout)),
                RssCapBytes = ByteSize.Parse(parse.GetValue(rssCap)!, "--rss-cap", ErrorCodes.BadArgument),
                TimeLimit = parse.GetValue(timeLimit) is { } minutes ? TimeSpan.FromMinutes(minutes) : null,
                Families = parse.GetValue(families)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                WorkFolder = parse.GetValue(work) is { } w ? Path.GetFullPath(w) : null,
                KeepFailures = parse.GetValue(keep),
            };
            var asJson = parse.GetValue(json);
            var each = parse.GetValue(verbose) && !asJson;
            var report = FuzzHarness.Run(options, outcome =>
            {
                if (each || (!asJson && FuzzClasses.IsFailure(outcome.Class)))
                    Console.Error.WriteLine(Printable(string.Create(CultureInfo.InvariantCulture,
                        $"case {outcome.Index,5} {outcome.Family,-20} {FuzzClasses.Name(outcome.Class),-14} exit {outcome.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? "-",-3} {outcome.Seconds,5:F1} s  {outcome.Mutation}: {outcome.Detail}")));
            }, error => Console.Error.WriteLine(Printable("harness error: " + error)), cancellation);
            if (asJson)
            {
                Output.WriteJson(new
                {
                    schema = "lowrank.bench-fuzz/v1",
                    seed = report.Seed,
                    requested = report.Requested,
                    ran = report.Outcomes.Count,
                    seconds = Math.Round(report.Elapsed.TotalSeconds, 1),
                    sourceUnchanged = report.SourceUnchanged,
                    harnessErrors = report.HarnessErrors.Select(Printable).ToList(),
                    classes = Enum.GetValues<FuzzClass>().ToDictionary(FuzzClasses.Name, report.Count),
                    families = report.Outcomes.GroupBy(o => o.Family).ToDictionary(g => g.Key, g => Enum.GetValues<FuzzClass>().ToDictionary(FuzzClasses.Name, c => g.Count(o => o.Class == c))),
                    failures = report.Failures,
                });
            }
            else
            {
                Print(report);
            }
            return Task.FromResult(report.Clean ? ExitCodes.Success : ExitCodes.CheckFailed);
        });
        return command;
    }

    /// <summary>How to start this tool again: its apphost, or the dotnet host with this assembly.</summary>
    private static (string Program, IReadOnlyList<string> Prefix) Self()
    {
        var process = Environment.ProcessPath ?? "dotnet";
        var entry = Assembly.GetEntryAssembly()?.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" && !string.IsNullOrEmpty(entry) ? (process, [entry]) : (process, []);
    }

    private static void Print(FuzzReport report)
    {
        var classes = Enum.GetValues<FuzzClass>();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fuzz seed {report.Seed}: {report.Outcomes.Count} of {report.Requested} cases in {report.Elapsed.TotalMinutes:F1} min; source model {(report.SourceUnchanged ? "unchanged" : "CHANGED")}"));
        Console.WriteLine(string.Join("  ", classes.Select(c => $"{FuzzClasses.Name(c)} {report.Count(c)}")));
        Console.WriteLine();
        Console.WriteLine($"{"family",-22}{string.Join("", classes.Select(c => $"{FuzzClasses.Name(c),15}"))}{"total",8}");
        foreach (var group in report.Outcomes.GroupBy(o => o.Family).OrderBy(g => FuzzHarness.AllFamilies.ToList().IndexOf(g.Key)))
            Console.WriteLine($"{group.Key,-22}{string.Join("", classes.Select(c => $"{group.Count(o => o.Class == c),15}"))}{group.Count(),8}");
        foreach (var failure in report.Failures)
            Console.WriteLine(Printable($"FAIL case {failure.Index} {failure.Family} {FuzzClasses.Name(failure.Class)}: {failure.Mutation}: {failure.Detail}"));
        foreach (var error in report.HarnessErrors) Console.WriteLine(Printable("HARNESS ERROR " + error));
    }

    /// <summary>Text safe for a UTF-8 console: a lone surrogate (hostile inputs carry them) becomes U+FFFD.</summary>
    private static string Printable(string text)
    {
        var chars = text.ToCharArray();
        for (var i = 0; i < chars.Length; i++)
        {
            if (char.IsHighSurrogate(chars[i]) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1])) i++;
            else if (char.IsSurrogate(chars[i])) chars[i] = '\uFFFD';
        }
        return new string(chars);
    }
}
