namespace LowRank.Build.Tests;

/// <summary>Bad CompressedModel items fail the build with an LRK code at the item's line in the project file.</summary>
[Collection(PackedFeedTests.Name)]
public class ItemErrorTests(PackedFeed feed)
{
    /// <summary>The build failed with <paramref name="code"/> at the Include of the item on the line holding <paramref name="marker"/>.</summary>
    private static void AssertErrorAt(ProcessResult build, string project, string marker, string code)
    {
        Assert.NotEqual(0, build.ExitCode);
        FixtureProject.AssertDiagnosticAt(build.Output, project, marker, $"error {code}: ");
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
}
