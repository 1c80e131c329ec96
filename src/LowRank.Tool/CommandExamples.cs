using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace LowRank.Tool;

/// <summary>
/// The examples <c>--help</c> prints under every command, as <c>dotnet</c>'s own commands do. Keyed by the command's
/// path below the root ("" is the root, "cache prune", "bench quant"); CommandConventionsTests checks that every command
/// has some and that each one parses without an error against the real command tree.
/// </summary>
public static class CommandExamples
{
    public static readonly IReadOnlyDictionary<string, string[]> ByPath = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        [""] =
        [
            "dotnet lowrank compress models/llama2-7b --method svd-llm --ratio 0.4 --calib npm:moby-dick -o out/llama2-7b-svdllm-0.4",
            "dotnet lowrank eval out/llama2-7b-svdllm-0.4 --text npm:moby-dick --text-start 1084497",
            "dotnet lowrank demo",
        ],
        ["doctor"] = ["dotnet lowrank doctor", "dotnet lowrank doctor --json"],
        ["cache"] = ["dotnet lowrank cache list", "dotnet lowrank cache prune --older-than 30d --max-size 50GB"],
        ["cache list"] = ["dotnet lowrank cache list", "dotnet lowrank cache list --cache /data/lowrank-cache --json"],
        ["cache verify"] = ["dotnet lowrank cache verify", "dotnet lowrank cache verify 3f2a9c --json"],
        ["cache prune"] = ["dotnet lowrank cache prune --older-than 30d --dry-run", "dotnet lowrank cache prune --max-size 50GB"],
        ["cache import"] = ["dotnet lowrank cache import LowRank.Cache.9324c8f622540385fd5de7ed05bbe0fe429ab2404284558148a17881bfe6443f.1.0.0.nupkg", "dotnet lowrank cache import entry.nupkg --cache /mnt/shared/lowrank-cache"],
        ["inspect"] = ["dotnet lowrank inspect models/llama2-7b", "dotnet lowrank inspect out/llama2-7b-svdllm-0.4 --verify --json"],
        ["compress"] =
        [
            "dotnet lowrank compress models/llama2-7b --method svd-llm --ratio 0.4 --calib npm:moby-dick -o out/llama2-7b-svdllm-0.4",
            "dotnet lowrank compress meta-llama/Llama-2-7b-hf --method adasvd --ratio 0.2 --calib corpus.txt --factor-dtype int8 --eval npm:moby-dick --eval-start 1084497 -o out/adasvd --force",
            "dotnet lowrank compress models/gpt2 --method svd --ratio 0.5 -o out/gpt2-svd --device cpu -v detailed",
        ],
        ["bench"] = ["dotnet lowrank bench parity", "dotnet lowrank bench methods models/llama-moby --calib npm:moby-dick --calib-end 1084497 --eval npm:moby-dick --eval-start 1084497"],
        ["bench methods"] =
        [
            "dotnet lowrank bench methods models/llama-moby --methods svd,svd-llm,adasvd --ratios 0.2,0.4 --calib npm:moby-dick --calib-end 1084497 --eval npm:moby-dick --eval-start 1084497 --json",
        ],
        ["bench quant"] =
        [
            "dotnet lowrank bench quant models/llama-moby --calib npm:moby-dick --calib-end 1084497 --eval npm:moby-dick --eval-start 1084497 --report out/quant",
        ],
        ["bench fuzz"] = ["dotnet lowrank bench fuzz --cases 1000 --seed 1", "dotnet lowrank bench fuzz --cases 50 --seed 7 --families config,cli --each --keep-failures"],
        ["bench gpu"] = ["dotnet lowrank bench gpu --shape 7b --layers 2 --work /tmp/lowrank-gpu -o gpu-7b.json", "dotnet lowrank bench gpu --shape tiny --work /tmp/lowrank-gpu --device cpu"],
        ["bench parity"] = ["dotnet lowrank bench parity", "dotnet lowrank bench parity tests/fixtures/parity --device cuda --json"],
        ["bench kernels"] = ["dotnet lowrank bench kernels --device cuda", "dotnet lowrank bench kernels --tokens 65536 --json"],
        ["bench tasks"] = ["dotnet lowrank bench tasks --text npm:moby-dick --text-start 1084497 -o out/tasks --name moby"],
        ["bench inference"] = ["dotnet lowrank bench inference", "dotnet lowrank bench inference --shape 7b --layers 4 --dtype fp16 --device cuda -o inference-7b.json"],
        ["generate"] = ["dotnet lowrank generate out/llama2-7b-svdllm-0.4 --prompt \"Call me Ishmael.\" --max-new-tokens 64", "dotnet lowrank generate models/stories260K --temperature 0.8 --seed 7"],
        ["import"] = ["dotnet lowrank import llama2c stories260K.bin --tokenizer tok512.bin -o models/stories260K"],
        ["import llama2c"] = ["dotnet lowrank import llama2c stories260K.bin --tokenizer tok512.bin -o models/stories260K --force"],
        ["demo"] = ["dotnet lowrank demo", "dotnet lowrank demo --method asvd --ratio 0.3 -o /tmp/demo --force"],
        ["verify"] = ["dotnet lowrank verify out/llama2-7b-svdllm-0.4", "dotnet lowrank verify out/llama2-7b-svdllm-0.4 --json"],
        ["export"] = ["dotnet lowrank export out/llama2-7b-svdllm-0.4 --dense -o out/llama2-7b-dense", "dotnet lowrank export out/llama2-7b-svdllm-0.4 --onnx --dtype fp16 -o out/llama2-7b-onnx"],
        ["config"] = ["dotnet lowrank config", "dotnet lowrank config --json"],
        ["eval"] =
        [
            "dotnet lowrank eval out/llama2-7b-svdllm-0.4 --text npm:moby-dick --text-start 1084497",
            "dotnet lowrank eval models/llama2-7b --text wiki.test.raw --text-format wikitext --tasks arc:arc_easy.jsonl --report out/eval --json",
        ],
    };

    /// <summary>The command's path below the root: its name and its parents', root excluded ("" for the root).</summary>
    public static string PathOf(Command command, Command root) =>
        command == root ? "" : string.Join(' ', Walk(root).First(p => p.Command == command).Path);

    /// <summary>Every command of the tree with its path below the root, the root first.</summary>
    public static IEnumerable<(Command Command, IReadOnlyList<string> Path)> Walk(Command root)
    {
        var pending = new Stack<(Command, IReadOnlyList<string>)>();
        pending.Push((root, []));
        while (pending.Count > 0)
        {
            var (command, path) = pending.Pop();
            yield return (command, path);
            foreach (var sub in command.Subcommands.Reverse()) pending.Push((sub, [.. path, sub.Name]));
        }
    }

    /// <summary>Makes <c>--help</c> print the command's examples after the usual text.</summary>
    public static void AddToHelp(RootCommand root)
    {
        var help = root.Options.OfType<HelpOption>().Single();
        if (help.Action is HelpAction inner) help.Action = new ExamplesHelpAction(inner, root);
    }

    /// <summary>True when the command line asks for help (-h, --help, -?): then missing required options are no error.</summary>
    public static bool IsHelp(ParseResult parse) => parse.Action is HelpAction or ExamplesHelpAction;

    private sealed class ExamplesHelpAction(HelpAction inner, RootCommand root) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            var code = inner.Invoke(parseResult);
            if (ByPath.TryGetValue(PathOf(parseResult.CommandResult.Command, root), out var examples))
            {
                var output = parseResult.InvocationConfiguration.Output;
                output.WriteLine("Examples:");
                foreach (var example in examples) output.WriteLine("  " + example);
                output.WriteLine();
            }
            return code;
        }
    }
}
