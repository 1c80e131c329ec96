using System.Security.Cryptography;

namespace LowRank.Tool.Tests;

/// <summary>Output folders that would replace the source, or that cannot be written: refused with a code before the
/// model is loaded, and the source is left byte for byte as it was (issue 17).</summary>
public sealed partial class BadInputTests
{
    /// <summary>A copy of llama-moby in temp/parent/model and a link temp/link → it.</summary>
    private (string Parent, string Model, string Link) LinkedModelCopy()
    {
        var parent = Directory.CreateDirectory(Path.Combine(temp.Path, "parent")).FullName;
        var model = Directory.CreateDirectory(Path.Combine(parent, "model")).FullName;
        foreach (var file in Directory.EnumerateFiles(RepoPaths.LlamaMoby)) File.Copy(file, Path.Combine(model, Path.GetFileName(file)));
        var link = Path.Combine(temp.Path, "link");
        Directory.CreateSymbolicLink(link, model);
        return (parent, model, link);
    }

    private static Dictionary<string, string> Hashes(string folder) => Directory.EnumerateFiles(folder)
        .ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [Theory]
    [InlineData("safetensors")]
    [InlineData("onnx")]
    public void Compress_of_a_link_never_replaces_the_folder_holding_the_real_model(string format)
    {
        var (parent, model, link) = LinkedModelCopy();
        var before = Hashes(model);
        var run = Run(null, "compress", link, "--method", "svd", "--ratio", "0.4", "--format", format, "--out", parent, "--force", "--progress", "text");
        AssertOneError(run, ErrorCodes.OutputExists, ExitCodes.Failure);
        Assert.DoesNotContain(run.Stderr, l => l.Contains("loading", StringComparison.Ordinal));
        Assert.Equal(before, Hashes(model));
        Assert.Equal(["model"], Directory.EnumerateFileSystemEntries(parent).Select(Path.GetFileName));
    }

    [Fact]
    public void Compress_into_the_source_through_a_link_is_refused()
    {
        var (_, model, link) = LinkedModelCopy();
        var before = Hashes(model);
        var run = Run(null, "compress", model, "--method", "svd", "--ratio", "0.4", "--out", Path.Combine(link, "compressed"), "--force");
        AssertOneError(run, ErrorCodes.OutputExists, ExitCodes.Failure);
        Assert.Equal(before, Hashes(model));
        Assert.False(Directory.Exists(Path.Combine(model, "compressed")));
    }

    [Fact]
    public void Export_over_the_folder_holding_its_artifact_is_refused()
    {
        var (parent, model, link) = LinkedModelCopy();
        var before = Hashes(model);
        var run = Run(null, "export", link, "--onnx", "--out", parent, "--force");
        AssertOneError(run, ErrorCodes.OutputExists, ExitCodes.Failure);
        Assert.Equal(before, Hashes(model));
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/proc/lowrank-out")]
    [InlineData("/sys/lowrank-out")]
    [InlineData("FILE/lowrank-out")]
    public void Unwritable_outputs_fail_before_the_model_is_loaded(string output)
    {
        if (output.StartsWith("FILE", StringComparison.Ordinal))
        {
            File.WriteAllText(Path.Combine(temp.Path, "a-file"), "not a folder");
            output = Path.Combine(temp.Path, "a-file", "lowrank-out");
        }
        var run = Run(null, "compress", RepoPaths.LlamaMoby, "--method", "svd-llm", "--ratio", "0.4", "--calib", "npm:moby-dick",
            "--out", output, "--force", "--progress", "text");
        AssertOneError(run, ErrorCodes.OutputUnwritable, ExitCodes.Failure);
        Assert.DoesNotContain(run.Stderr, l => l.Contains("loading", StringComparison.Ordinal) || l.Contains("calib", StringComparison.Ordinal));
    }

    [Fact]
    public void Demo_and_import_check_their_output_first()
    {
        File.WriteAllText(Path.Combine(temp.Path, "a-file"), "not a folder");
        var under = Path.Combine(temp.Path, "a-file", "out");
        AssertOneError(Run(null, "demo", "--out", under), ErrorCodes.OutputUnwritable, ExitCodes.Failure);
        AssertOneError(Run(null, "import", "llama2c", Path.Combine(temp.Path, "model.bin"), "--tokenizer", Path.Combine(temp.Path, "tokenizer.bin"), "--out", under),
            ErrorCodes.OutputUnwritable, ExitCodes.Failure);
    }
}
