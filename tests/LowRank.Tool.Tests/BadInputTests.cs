using System.Text.RegularExpressions;

namespace LowRank.Tool.Tests;

/// <summary>
/// Bad inputs, run through the real tool: each gives exactly one message on stderr, "error LRK####: …" with the
/// expected code, a non-zero exit code, and no stack trace. (Progress lines "[stage] …" are not messages.)
/// </summary>
public sealed partial class BadInputTests : IDisposable
{
    private readonly TempFolder temp = new();

    public void Dispose() => temp.Dispose();

    private ToolRun Run(Dictionary<string, string?>? extraEnvironment, params string[] args)
    {
        var env = Tool.CleanEnvironment(temp.Path);
        foreach (var (k, v) in extraEnvironment ?? []) env[k] = v;
        return Tool.Run(temp.Path, env, args);
    }

    private static void AssertOneError(ToolRun run, string code, int exitCode)
    {
        Assert.True(run.ExitCode == exitCode, run.Describe());
        var message = Assert.Single(run.Messages);
        Assert.Matches(ErrorLine(), message);
        Assert.StartsWith($"error {code}: ", message, StringComparison.Ordinal);
        Assert.DoesNotContain(run.Stderr.Concat(run.Stdout), line => line.TrimStart().StartsWith("at ", StringComparison.Ordinal));
        Assert.False(Directory.Exists(Path.Combine(Path.GetTempPath(), "never-written")));
    }

    private string Out => Path.Combine(temp.Path, "out");

    [Fact]
    public void Missing_model()
    {
        var run = Run(null, "compress", Path.Combine(temp.Path, "no-such-model"), "--method", "svd", "--ratio", "0.4", "--out", Out);
        AssertOneError(run, ErrorCodes.ModelNotFound, ExitCodes.Failure);
        Assert.False(Directory.Exists(Out));
    }

    [Fact]
    public void Unknown_method()
    {
        var run = Run(null, "compress", RepoPaths.LlamaMoby, "--method", "svd-xl", "--ratio", "0.4", "--out", Out);
        AssertOneError(run, ErrorCodes.UnknownMethod, ExitCodes.Usage);
        Assert.Contains("svd-llm", run.Messages[0], StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("--stream-blocks", "on", "fwsvd")]
    public void Bad_memory_options(string option, string value, string method)
    {
        var run = Run(null, "compress", RepoPaths.LlamaMoby, "--method", method, "--ratio", "0.4", option, value,
            "--calib", "npm:moby-dick", "--out", Out);
        AssertOneError(run, ErrorCodes.BadArgument, ExitCodes.Failure);
        Assert.False(Directory.Exists(Out));
    }

    [Fact]
    public void Unknown_compute_dtype()
    {
        var run = Run(null, "compress", RepoPaths.LlamaMoby, "--method", "svd", "--ratio", "0.4", "--dtype", "fp8", "--out", Out);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(run.Messages, m => m.Contains("fp8", StringComparison.Ordinal));
        Assert.False(Directory.Exists(Out));
    }

    [Theory]
    [InlineData(ErrorCodes.BadRatio, "--method", "svd-llm")]
    [InlineData(ErrorCodes.BadMethodOption, "--method", "gptq")]
    [InlineData(ErrorCodes.BadMethodOption, "--method", "rtn", "--ratio", "0.4")]
    [InlineData(ErrorCodes.BadArgument, "--method", "svd", "--ratio", "0.4", "--factor-dtype", "int5")]
    [InlineData(ErrorCodes.BadArgument, "--method", "svd", "--ratio", "0.4", "--stream-blocks", "maybe")] // parsed by the option since issue 16 (was exit 1)
    [InlineData(ErrorCodes.BadArgument, "--method", "svd", "--ratio", "0.4", "--seed", "-1")]
    [InlineData(ErrorCodes.BadArgument, "--method", "svd", "--ratio", "0.4", "--samples", "0")]
    [InlineData(ErrorCodes.UnknownDevice, "--method", "svd", "--ratio", "0.4", "--device", "tpu")]
    [InlineData(ErrorCodes.BadArgument, "--method", "svd", "--method", "svd-llm", "--ratio", "0.4")] // was an unhandled exception (bench fuzz)
    [InlineData(ErrorCodes.BadArgument, "--method", "gptq", "--bits", "4", "--bits", "3")]
    public void Ratio_bits_and_quantized_factor_dtypes_are_checked_while_parsing(string code, params string[] options)
    {
        var run = Run(null, ["compress", RepoPaths.LlamaMoby, .. options, "--out", Out]);
        AssertOneError(run, code, ExitCodes.Usage);
        Assert.False(Directory.Exists(Out));
    }

    /// <summary>A bad <c>bench quant --factor-dtypes</c> entry is a usage error before anything loads (it was checked in
    /// the command's action, exit 1).</summary>
    [Fact]
    public void Bench_quant_factor_dtypes_are_checked_while_parsing()
    {
        var run = Run(null, "bench", "quant", RepoPaths.LlamaMoby, "--calib", "npm:moby-dick", "--eval", "npm:moby-dick", "--factor-dtypes", "fp16,int5");
        AssertOneError(run, ErrorCodes.BadArgument, ExitCodes.Usage);
        Assert.Contains("int5", run.Messages[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Bits_with_a_low_rank_method_and_quantized_factors_with_a_baseline_are_refused()
    {
        var bits = Run(null, "compress", RepoPaths.LlamaMoby, "--method", "svd", "--ratio", "0.4", "--bits", "4", "--out", Out);
        AssertOneError(bits, ErrorCodes.BadMethodOption, ExitCodes.Failure);
        var factors = Run(null, "compress", RepoPaths.LlamaMoby, "--method", "rtn", "--bits", "4", "--factor-dtype", "int8", "--out", Out);
        AssertOneError(factors, ErrorCodes.BadArgument, ExitCodes.Failure);
        Assert.False(Directory.Exists(Out));
    }

    [Theory]
    [InlineData("1.5")]
    [InlineData("0")]
    [InlineData("-0.2")]
    public void Ratio_outside_zero_one(string ratio)
    {
        var run = Run(null, "compress", RepoPaths.LlamaMoby, "--method", "svd", "--ratio", ratio, "--out", Out);
        AssertOneError(run, ErrorCodes.BadRatio, ExitCodes.Usage);
    }

    [Fact]
    public void Missing_calibration_file()
    {
        var run = Run(null, "compress", RepoPaths.LlamaMoby, "--method", "svd-llm", "--ratio", "0.4", "--calib", Path.Combine(temp.Path, "no-such.txt"), "--out", Out);
        AssertOneError(run, ErrorCodes.DataUnreadable, ExitCodes.Failure);
        Assert.False(Directory.Exists(Out));
    }

    [Fact]
    public void Calibration_file_that_is_not_text()
    {
        var binary = Path.Combine(temp.Path, "calib.txt");
        File.WriteAllBytes(binary, [0x68, 0x69, 0xC3, 0x28, 0xFF, 0xFE, 0x00]);
        var run = Run(null, "compress", RepoPaths.LlamaMoby, "--method", "svd-llm", "--ratio", "0.4", "--calib", binary, "--out", Out);
        AssertOneError(run, ErrorCodes.DataUnreadable, ExitCodes.Failure);
        Assert.False(Directory.Exists(Out));
    }

    [Fact]
    public void Unknown_config_key_in_the_project_file()
    {
        Directory.CreateDirectory(Path.Combine(temp.Path, ".git"));
        File.WriteAllText(Path.Combine(temp.Path, "lowrank.json"), """{ "compress": { "ratoi": 0.4 } }""");
        var run = Run(null, "compress", RepoPaths.LlamaMoby, "--method", "svd", "--ratio", "0.4", "--out", Out);
        AssertOneError(run, ErrorCodes.UnknownConfigKey, ExitCodes.Failure);
        Assert.Contains("compress:ratoi", run.Messages[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_config_value_in_the_environment()
    {
        var run = Run(new() { ["LOWRANK_COMPRESS__RATIO"] = "2" }, "compress", RepoPaths.LlamaMoby, "--method", "svd", "--out", Out);
        AssertOneError(run, ErrorCodes.BadConfigValue, ExitCodes.Failure);
        Assert.Contains("LOWRANK_COMPRESS__RATIO", run.Messages[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Output_that_exists()
    {
        Directory.CreateDirectory(Out);
        var run = Run(null, "compress", RepoPaths.LlamaMoby, "--method", "svd", "--ratio", "0.4", "--out", Out);
        AssertOneError(run, ErrorCodes.OutputExists, ExitCodes.Failure);
    }

    [Fact]
    public void Verify_of_a_folder_that_is_not_an_artifact()
    {
        var run = Run(null, "verify", RepoPaths.LlamaMoby);
        AssertOneError(run, ErrorCodes.BadArtifact, ExitCodes.Failure);
    }

    [Fact]
    public void Demo_without_the_npm_corpora_says_to_run_setup()
    {
        var empty = Path.Combine(temp.Path, "no-npm");
        Directory.CreateDirectory(Path.Combine(empty, "node_modules"));
        var run = Run(new() { ["LOWRANK_NPM_DATA"] = empty }, "demo", "--out", Out);
        AssertOneError(run, ErrorCodes.DataUnreadable, ExitCodes.Failure);
        Assert.Contains("eng/setup.sh", run.Messages[0], StringComparison.Ordinal);
        Assert.False(Directory.Exists(Out));
    }

    [GeneratedRegex(@"^error LRK\d{4}: \S.*$")]
    private static partial Regex ErrorLine();
}
