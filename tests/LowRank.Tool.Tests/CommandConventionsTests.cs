using System.CommandLine;
using System.Text.Json.Nodes;

namespace LowRank.Tool.Tests;

/// <summary>
/// The command line feels like dotnet's (issue 18): walks the real command tree (in process, no tool run but one) and
/// checks one name per concept — -o|--output (with --out kept), --batch-size, --protocol, -v|--verbosity everywhere —
/// that every command has examples in --help and that each example parses against the tree, and that --json output
/// carries a schema id. About a second (one `cache list --json` run).
/// </summary>
public sealed class CommandConventionsTests
{
    private static readonly RootCommand Root = CreateRoot();

    private static RootCommand CreateRoot()
    {
        var root = ToolCommands.CreateRoot();
        root.Options.Add(ToolProgress.CreateOption());
        root.Options.Add(ToolConfiguration.ConfigOption());
        root.Options.Add(ToolConfiguration.NoConfigOption());
        root.Options.Add(ToolVerbosity.CreateOption());
        return root;
    }

    private static IEnumerable<(string Path, Option Option)> AllOptions() =>
        CommandExamples.Walk(Root).SelectMany(c => c.Command.Options.Select(o => (string.Join(' ', c.Path), o)));

    private static IEnumerable<string> Names(Option option) => new[] { option.Name }.Concat(option.Aliases);

    [Fact]
    public void One_name_per_concept_across_commands()
    {
        // The concept's name, the aliases it must have, and names that may only appear as its aliases.
        var concepts = new (string Name, string[] Aliases, string[] OldNames)[]
        {
            ("--output", ["-o", "--out"], ["--out", "-o"]),
            ("--batch-size", ["--batch"], ["--batch"]),
            ("--protocol", [], ["--calib-protocol"]),
        };
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (path, option) in AllOptions())
        {
            foreach (var (name, aliases, oldNames) in concepts)
            {
                if (option.Name == name)
                {
                    foreach (var alias in aliases) Assert.True(option.Aliases.Contains(alias), $"'{path}' {name} lacks {alias}");
                    seen[name] = seen.GetValueOrDefault(name) + 1;
                }
                else
                {
                    foreach (var old in oldNames)
                        Assert.False(Names(option).Contains(old), $"'{path}' has {option.Name} answering to {old}: that is {name}'s");
                }
            }
        }
        Assert.True(seen["--output"] >= 7, $"--output on {seen["--output"]} commands");
        Assert.True(seen["--batch-size"] >= 3);
        Assert.True(seen["--protocol"] >= 4);
    }

    [Fact]
    public void Every_command_takes_verbosity_and_short_names_are_unique()
    {
        var verbosity = Root.Options.Single(o => o.Name == "--verbosity");
        Assert.True(verbosity.Recursive);
        Assert.Contains("-v", verbosity.Aliases);
        foreach (var (command, path) in CommandExamples.Walk(Root))
        {
            var line = string.Join(' ', path);
            foreach (var level in new[] { "q", "quiet", "m", "minimal", "n", "normal", "d", "detailed", "diag", "diagnostic" })
            {
                var parsed = Root.Parse([.. path, "-v", level, "--help"]);
                Assert.True(parsed.Errors.Count == 0, $"'{line} -v {level}': {string.Join("; ", parsed.Errors.Select(e => e.Message))}");
            }
            Assert.Contains(Root.Parse([.. path, "-v", "loud"]).Errors, e => e.Message.Contains("loud", StringComparison.Ordinal));
            // No option name or alias twice within what a command accepts (its own options and the root's recursive ones).
            var accepted = command.Options.Concat(Root.Options.Where(o => o.Recursive && command != Root)).SelectMany(Names).ToList();
            Assert.True(accepted.Count == accepted.Distinct(StringComparer.Ordinal).Count(), $"'{line}' accepts a name twice: {string.Join(", ", accepted.GroupBy(n => n).Where(g => g.Count() > 1).Select(g => g.Key))}");
        }
        Assert.Equal(Verbosity.Quiet, ToolVerbosity.Parse("q"));
        Assert.Equal(Verbosity.Diagnostic, ToolVerbosity.Parse("diag"));
        Assert.Equal(Verbosity.Detailed, ToolVerbosity.Parse("DETAILED"));
    }

    [Fact]
    public void Every_command_has_examples_that_parse()
    {
        var paths = CommandExamples.Walk(Root).Select(c => string.Join(' ', c.Path)).ToList();
        Assert.True(paths.Count >= 20, string.Join(", ", paths));
        foreach (var path in paths)
        {
            Assert.True(CommandExamples.ByPath.TryGetValue(path, out var examples) && examples.Length > 0, $"'dotnet lowrank {path}' has no examples");
            Assert.True(CommandExamples.IsHelp(Root.Parse([.. Split(path), "--help"])), $"'{path} --help' is not help");
            foreach (var example in examples)
            {
                var prefix = ("dotnet lowrank " + path).TrimEnd();
                Assert.StartsWith(prefix, example, StringComparison.Ordinal);
                var parsed = Root.Parse(Split(example).Skip(2).ToArray());
                Assert.True(parsed.Errors.Count == 0, $"'{example}': {string.Join("; ", parsed.Errors.Select(e => e.Message))}");
                Assert.StartsWith(path, CommandExamples.PathOf(parsed.CommandResult.Command, Root), StringComparison.Ordinal);
            }
        }
        Assert.Empty(CommandExamples.ByPath.Keys.Except(paths));
    }

    [Fact]
    public void Help_prints_the_examples_and_json_output_carries_a_schema_id()
    {
        using var temp = new TempFolder();
        var env = Tool.CleanEnvironment(temp.Path);
        // export has required options: asking for its help is still no error.
        var help = Tool.Run(temp.Path, env, "export", "--help");
        Assert.True(help.ExitCode == 0, help.Describe());
        var text = string.Join('\n', help.Stdout);
        Assert.Contains("-o, --out, --output <output> (REQUIRED)", text, StringComparison.Ordinal);
        Assert.Contains("Examples:\n  dotnet lowrank export out/llama2-7b-svdllm-0.4 --dense -o out/llama2-7b-dense", text, StringComparison.Ordinal);

        var list = Tool.Run(temp.Path, env, "cache", "list", "--cache", temp.File("cache"), "--json");
        Assert.True(list.ExitCode == 0, list.Describe());
        Assert.Equal("lowrank.cache.list/v1", (string?)JsonNode.Parse(string.Join('\n', list.Stdout))!["schema"]);

        Assert.Equal("lowrank.bench.parity/v1", Output.SchemaId("bench parity"));
        var wrapped = Output.WithSchema(new[] { 1, 2 }, "x");
        Assert.Equal("lowrank.x/v1", (string?)wrapped["schema"]);
        Assert.Equal(2, wrapped["value"]!.AsArray().Count);
        var own = Output.WithSchema(new { schema = "lowrank.eval/v1", ppl = 1.5 }, "eval");
        Assert.Equal("lowrank.eval/v1", (string?)own["schema"]);
        Assert.Equal("schema", Output.WithSchema(new { a = 1 }, "verify").First().Key);
    }

    /// <summary>Splits an example like a shell: spaces separate words, double quotes group them.</summary>
    private static IEnumerable<string> Split(string line)
    {
        var word = new System.Text.StringBuilder();
        var quoted = false;
        foreach (var c in line)
        {
            if (c == '"') quoted = !quoted;
            else if (c == ' ' && !quoted)
            {
                if (word.Length > 0) yield return word.ToString();
                word.Clear();
            }
            else word.Append(c);
        }
        if (word.Length > 0) yield return word.ToString();
    }
}
