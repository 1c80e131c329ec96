using System.Text.Json.Nodes;

namespace LowRank.Tool.Tests;

/// <summary>Model folders whose contents would exhaust the host or block the tool (issue 17): each is a coded error in
/// a moment, on every command that reads a model. The runs get a 512 MiB managed heap, so a regression fails here with
/// an out-of-memory crash instead of taking the machine's memory.</summary>
public sealed partial class BadInputTests
{
    private static readonly Dictionary<string, string?> SmallHeap = new() { ["DOTNET_GCHeapHardLimit"] = "0x20000000" };

    /// <summary>A copy of llama-moby under <paramref name="name"/> with <paramref name="edit"/> applied to its config.json.</summary>
    private string ModelWithConfig(string name, Action<JsonObject> edit)
    {
        var folder = Directory.CreateDirectory(Path.Combine(temp.Path, name)).FullName;
        foreach (var file in Directory.EnumerateFiles(RepoPaths.LlamaMoby)) File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        return folder;
    }

    private IEnumerable<string[]> CommandsOn(string model) =>
    [
        ["inspect", model],
        ["generate", model, "--prompt", "Call me", "--max-new-tokens", "2", "--device", "cpu"],
        ["compress", model, "--method", "svd", "--ratio", "0.4", "--out", Path.Combine(temp.Path, "out-" + Path.GetFileName(model)), "--device", "cpu"],
        ["eval", model, "--text", "npm:moby-dick", "--text-end", "20000", "--device", "cpu"],
        ["export", model, "--onnx", "--out", Path.Combine(temp.Path, "onnx-" + Path.GetFileName(model))],
    ];

    [Theory]
    [InlineData("num_hidden_layers", 1_000_000_000, ErrorCodes.MissingTensor)]
    [InlineData("head_dim", 1_000_000_000, ErrorCodes.BadCheckpoint)]
    [InlineData("intermediate_size", 2_000_000_000, ErrorCodes.BadCheckpoint)]
    public void Config_sizes_beyond_the_tensors_present_fail_before_any_allocation(string key, int value, string code)
    {
        var model = ModelWithConfig(key, config => config[key] = value);
        foreach (var command in CommandsOn(model))
        {
            var run = Run(SmallHeap, command);
            AssertOneError(run, code, ExitCodes.Failure);
            Assert.Contains(key, run.Messages[0], StringComparison.Ordinal);
        }
        Assert.Empty(Directory.EnumerateDirectories(temp.Path, "*-" + key));
    }

    [Theory]
    [InlineData("model.safetensors", ErrorCodes.BadSafetensors)]
    [InlineData("config.json", ErrorCodes.BadConfig)]
    [InlineData("tokenizer.json", ErrorCodes.BadTokenizer)]
    public void A_fifo_under_a_model_file_name_is_refused_without_blocking(string file, string code)
    {
        var model = ModelWithConfig("fifo", _ => { });
        File.Delete(Path.Combine(model, file));
        MakeFifo(Path.Combine(model, file));
        // inspect reads no tokenizer; the commands that do must refuse the FIFO too.
        foreach (var command in CommandsOn(model).Where(c => file != "tokenizer.json" || c[0] is "generate" or "eval"))
        {
            var run = Tool.Run(temp.Path, Env(SmallHeap), command, onStdout: null, TimeSpan.FromSeconds(60));
            AssertOneError(run, code, ExitCodes.Failure);
            Assert.Contains("FIFO", run.Messages[0], StringComparison.Ordinal);
        }
    }

    private Dictionary<string, string?> Env(Dictionary<string, string?> extra)
    {
        var env = Tool.CleanEnvironment(temp.Path);
        foreach (var (k, v) in extra) env[k] = v;
        return env;
    }

    private static void MakeFifo(string path)
    {
        using var mkfifo = System.Diagnostics.Process.Start("mkfifo", [path])!;
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
    }
}
