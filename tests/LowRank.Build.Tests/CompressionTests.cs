using System.Diagnostics;
using LowRank.Cache;

namespace LowRank.Build.Tests;

/// <summary>Real compressions of the built-in default model (models/llama-moby) by the packaged tool on CPU.</summary>
[Collection(PackedFeedTests.Name)]
public class CompressionTests(PackedFeed feed, ITestOutputHelper output)
{
    private static string Item(string ratio = "0.5", string extra = "") =>
        $"""    <CompressedModel Include="{TestModels.SourceModel}" Method="svd" Ratio="{ratio}" OutputName="Moby" Device="cpu" {extra}/>""";

    private static int Count(string text, string what) => (text.Length - text.Replace(what, "", StringComparison.Ordinal).Length) / what.Length;

    [RequiresCompressFact]
    public void First_build_compresses_second_does_not_and_a_new_ratio_compresses_again()
    {
        using var fixture = new FixtureProject(feed, "compress");
        var project = fixture.WriteApp("app", Item());
        var first = fixture.Run("app", "build", "-nologo").ShouldSucceed();
        output.WriteLine($"first build {first.Elapsed.TotalSeconds:F1} s");
        Assert.Contains("LowRank: compressing", first.Output, StringComparison.Ordinal);
        Assert.Contains("LowRank: [compress 1/4]", first.Output, StringComparison.Ordinal); // the tool's JSON progress, as MSBuild messages
        var config = fixture.PathOf("app", "bin", "Debug", "net10.0", "models", "Moby", "config.json");
        Assert.True(File.Exists(config), first.Output);
        Assert.Contains("\"lowrank\"", File.ReadAllText(config), StringComparison.Ordinal);
        Assert.True(File.Exists(fixture.PathOf("app", "bin", "Debug", "net10.0", "models", "Moby", "model.safetensors")));
        var entry = Assert.Single(new ModelCache(fixture.Cache).List());
        Assert.Empty(ModelCache.Verify(entry));

        var second = fixture.Run("app", "build", "-nologo", "-clp:PerformanceSummary").ShouldSucceed();
        Assert.DoesNotContain("LowRank: compressing", second.Output, StringComparison.Ordinal);
        var overhead = CacheSeeding.LowRankTargetMilliseconds(second.Output, out var detail);
        Console.WriteLine($"[overhead] rebuild after a real compression: LowRank targets {overhead} ms ({detail}); whole build {second.Elapsed.TotalSeconds:F1} s");
        output.WriteLine($"second build {second.Elapsed.TotalSeconds:F1} s, LowRank targets {overhead} ms ({detail})");
        Assert.True(overhead < 1000, detail);

        File.WriteAllText(project, File.ReadAllText(project).Replace("Ratio=\"0.5\"", "Ratio=\"0.4\"", StringComparison.Ordinal));
        var third = fixture.Run("app", "build", "-nologo").ShouldSucceed();
        Assert.Contains("LowRank: compressing", third.Output, StringComparison.Ordinal);
        Assert.Equal(2, new ModelCache(fixture.Cache).List().Count);
    }

    [RequiresCompressFact]
    public void Two_items_that_both_miss_are_both_compressed_in_one_build()
    {
        using var fixture = new FixtureProject(feed, "twomiss");
        fixture.WriteApp("app", $"""
                <CompressedModel Include="{TestModels.SourceModel}" Method="svd" Ratio="0.35" OutputName="A" Device="cpu" />
                <CompressedModel Include="{TestModels.SourceModel}" Method="svd" Ratio="0.45" OutputName="B" Device="cpu" />
            """);
        var build = fixture.Run("app", "build", "-nologo").ShouldSucceed();
        Assert.Equal(2, Count(build.Output, "LowRank: compressing"));
        Assert.Equal(2, new ModelCache(fixture.Cache).List().Count);
        foreach (var name in new[] { "A", "B" })
            Assert.True(File.Exists(fixture.PathOf("app", "bin", "Debug", "net10.0", "models", name, "model.safetensors")), build.Output);
    }

    [RequiresCompressFact]
    public void Two_parallel_builds_of_the_same_model_compress_once()
    {
        using var fixture = new FixtureProject(feed, "parallel");
        fixture.WriteApp("one", Item());
        fixture.WriteApp("two", Item());
        var results = new ProcessResult[2];
        var threads = new[] { "one", "two" }.Select((folder, i) => new Thread(() => results[i] = fixture.Run(folder, "build", "-nologo"))).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        foreach (var r in results) r.ShouldSucceed();
        var all = results[0].Output + results[1].Output;
        Assert.Equal(1, Count(all, "LowRank: compressing"));
        Assert.Single(new ModelCache(fixture.Cache).List());
        Assert.True(File.Exists(fixture.PathOf("two", "bin", "Debug", "net10.0", "models", "Moby", "model.safetensors")));
    }

    [RequiresCompressFact]
    public void Killing_or_cancelling_the_build_during_compression_leaves_no_entry()
    {
        using var fixture = new FixtureProject(feed, "kill");
        fixture.WriteApp("app", Item());
        fixture.Run("app", "restore", "-nologo").ShouldSucceed();

        // SIGKILL to the whole tree at the first block: nothing may look like an entry afterwards.
        var killed = Dotnet.Run(fixture.PathOf("app"), fixture.Environment, ["build", "-nologo"], (line, process) =>
        {
            if (line.Contains("LowRank: [compress 1/4]", StringComparison.Ordinal)) process.Kill(entireProcessTree: true);
        }, TimeSpan.FromMinutes(5));
        Assert.NotEqual(0, killed.ExitCode);
        Assert.Contains("LowRank: compressing", killed.Output, StringComparison.Ordinal);
        var cache = new ModelCache(fixture.Cache);
        Assert.Empty(cache.List());

        // Ctrl+C (SIGINT): MSBuild cancels the task, which kills the tool and deletes its temp folder.
        var cancelled = Dotnet.Run(fixture.PathOf("app"), fixture.Environment, ["build", "-nologo"], (line, process) =>
        {
            if (line.Contains("LowRank: [compress 1/4]", StringComparison.Ordinal))
                using (Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) { }
        }, TimeSpan.FromMinutes(5));
        Assert.NotEqual(0, cancelled.ExitCode);
        Assert.Empty(cache.List());
        Assert.Empty(Directory.EnumerateDirectories(cache.TempFolder)); // the cancelled run removed its temp folder and the SIGKILLed run's orphan

        // The next build compresses from scratch and succeeds.
        var next = fixture.Run("app", "build", "-nologo").ShouldSucceed();
        Assert.Contains("LowRank: compressing", next.Output, StringComparison.Ordinal);
        Assert.Single(cache.List());
    }

    [RequiresCompressFact]
    public void A_tool_error_is_reported_with_its_code_at_the_item_line()
    {
        using var fixture = new FixtureProject(feed, "toolerror");
        var project = fixture.WriteApp("app", Item(extra: "ToolArguments=\"--set NoSuchOption=1\" "));
        var result = fixture.Run("app", "build", "-nologo");
        Assert.NotEqual(0, result.ExitCode);
        FixtureProject.AssertDiagnosticAt(result.Output, project, "CompressedModel Include", @"error LRK\d{4}: .*NoSuchOption");
        Assert.Empty(new ModelCache(fixture.Cache).List());
    }
}
