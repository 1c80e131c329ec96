namespace LowRank.Build.Tests;

/// <summary>The tool packed inside LowRank.Build.Tasks runs on its own from the packages folder, as the build runs it.</summary>
[Collection(PackedFeedTests.Name)]
public class PackagedToolTests(PackedFeed feed)
{
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
