using System.Text.RegularExpressions;

namespace LowRank.Build.Tests;

/// <summary>Bad CompressedModel items fail the build with an LRK code at the item's line in the project file.</summary>
[Collection(PackedFeedTests.Name)]
public class ItemErrorTests(PackedFeed feed)
{
    /// <summary>The build failed with <paramref name="code"/> at the Include of the item on the line holding <paramref name="marker"/>.</summary>
    private static void AssertErrorAt(ProcessResult build, string project, string marker, string code)
    {
        Assert.NotEqual(0, build.ExitCode);
        var at = FixtureProject.Locate(project, marker);
        var pattern = $@"{Regex.Escape(project)}\({at.Line},{at.Column}\): LowRank error {code}: ";
        Assert.True(Regex.IsMatch(build.Output, pattern), $"expected {project}({at.Line},{at.Column}): LowRank error {code}\n{build.Output}");
    }

    [Fact]
    public void Unknown_method_bad_ratio_bad_format_and_missing_model_each_point_at_their_line()
    {
        using var fixture = new FixtureProject(feed, "errors");
        fixture.WriteSourceModel("model");
        var project = fixture.WriteApp("app", """
                <CompressedModel Include="../model" Method="magic" OutputName="A" />
                <CompressedModel Include="../model" Ratio="1.5" OutputName="B" />
                <CompressedModel Include="../no-such-model" OutputName="C" />
                <CompressedModel Include="../model" Format="gguf" OutputName="D" />
            """);
        var result = fixture.Run("app", "build", "-nologo");
        AssertErrorAt(result, project, "Method=\"magic\"", "LRK4001");
        AssertErrorAt(result, project, "Ratio=\"1.5\"", "LRK4002");
        AssertErrorAt(result, project, "no-such-model", "LRK2001");
        AssertErrorAt(result, project, "Format=\"gguf\"", "LRK7001");
        Assert.Contains("Format: unknown model format 'gguf'", result.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("compressing", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_tool_names_the_property_the_variable_and_the_packaged_tool()
    {
        using var fixture = new FixtureProject(feed, "notool");
        fixture.WriteSourceModel("model");
        var project = fixture.WriteApp("app", """    <CompressedModel Include="../model" />""");
        var result = fixture.Run("app", "build", "-nologo", "-p:LowRankToolPath=/nonexistent/dotnet-lowrank.dll");
        AssertErrorAt(result, project, "CompressedModel", "LRK7003");
        Assert.Contains("property LowRankToolPath = '/nonexistent/dotnet-lowrank.dll' does not exist", result.Output, StringComparison.Ordinal);
        Assert.Contains("environment variable LOWRANK_TOOL is not set", result.Output, StringComparison.Ordinal);
        Assert.Contains("the tool packaged with LowRank.Build.Tasks", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Design_time_build_never_compresses_and_a_miss_with_compression_off_is_an_error_at_the_item()
    {
        using var fixture = new FixtureProject(feed, "designtime");
        fixture.WriteSourceModel("model");
        var project = fixture.WriteApp("app", """    <CompressedModel Include="../model" Ratio="0.5" />""");
        fixture.Run("app", "restore", "-nologo").ShouldSucceed();
        // What IDEs run: a design-time build of the compile inputs.
        var designTime = fixture.Run("app", "msbuild", "-nologo", "-t:Compile", "-p:DesignTimeBuild=true", "-p:SkipCompilerExecution=true", "-p:ProvideCommandLineArgs=true");
        designTime.ShouldSucceed();
        Assert.DoesNotContain("compressing", designTime.Output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(fixture.Cache, ".tmp")) && Directory.EnumerateFileSystemEntries(Path.Combine(fixture.Cache, ".tmp")).Any());
        Assert.Empty(new LowRank.Cache.ModelCache(fixture.Cache).List());

        var offline = fixture.Run("app", "build", "-nologo", "-p:LowRankCompressOnMiss=false");
        AssertErrorAt(offline, project, "CompressedModel", "LRK7004");
    }

    [Fact]
    public void Packaged_tool_runs_and_lists_the_cache()
    {
        using var fixture = new FixtureProject(feed, "tool");
        fixture.WriteSourceModel("model");
        fixture.WriteApp("app", """    <CompressedModel Include="../model" />""");
        fixture.Run("app", "restore", "-nologo").ShouldSucceed();
        var list = Dotnet.Run(fixture.Root, fixture.Environment, feed.PackagedTool, "cache", "list", "--json").ShouldSucceed();
        var json = PackedFeed.ParseLastJsonObject(list.Output);
        Assert.Equal(fixture.Cache, json.GetProperty("cache").GetString());
        Assert.Equal(0, json.GetProperty("entries").GetArrayLength());
    }
}
