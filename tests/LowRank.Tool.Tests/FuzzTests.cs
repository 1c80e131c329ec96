using System.Text.Json;

namespace LowRank.Tool.Tests;

/// <summary>
/// The fixed-seed subset of the project's fuzzer that CI runs (issue 17): `bench fuzz` starts this tool as a child
/// process per case, on mutated copies of the built-in model, command lines and remote cache packages. Every case
/// must end as a coded error or a checked acceptance: no crash, hang, memory blow-up or silent wrong result, and
/// the source model is unchanged.
/// </summary>
public class FuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void A_fixed_seed_fuzz_subset_has_no_crash_hang_blow_up_or_silent_wrong_result()
    {
        using var home = new TempFolder();
        var model = RepoPaths.LlamaMoby;
        var run = Tool.Run(RepoPaths.Root, Tool.CleanEnvironment(home.Path),
            ["bench", "fuzz", "--cases", "42", "--seed", "2026", "--timeout", "30", "--rss-cap", "2GB", "--model", model, "--work", home.Combine("fuzz"), "--json"],
            onStdout: null, TimeSpan.FromMinutes(8));
        output.WriteLine(string.Join('\n', run.Stdout));
        output.WriteLine(string.Join('\n', run.Stderr));
        var report = JsonDocument.Parse(string.Join('\n', run.Stdout)).RootElement;
        var classes = report.GetProperty("classes");
        Assert.Equal("lowrank.bench-fuzz/v1", report.GetProperty("schema").GetString());
        Assert.Equal(42, report.GetProperty("ran").GetInt32());
        Assert.True(report.GetProperty("sourceUnchanged").GetBoolean());
        foreach (var bad in new[] { "crash", "hang", "memory-blow-up", "silent-wrong" })
            Assert.True(classes.GetProperty(bad).GetInt32() == 0, $"{bad}: {report.GetProperty("failures")}");
        Assert.Equal(0, run.ExitCode);
        // The subset reaches every family, and both fine outcomes occur (the harness can tell them apart).
        Assert.Equal(7, report.GetProperty("families").EnumerateObject().Count());
        Assert.True(classes.GetProperty("coded-error").GetInt32() >= 20, classes.ToString());
        Assert.True(classes.GetProperty("accepted").GetInt32() >= 1, classes.ToString());
    }
}
