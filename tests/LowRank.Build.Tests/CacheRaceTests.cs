using System.Text.RegularExpressions;
using LowRank.Cache;

namespace LowRank.Build.Tests;

/// <summary>
/// <c>cache prune</c> run inside a real build at the exact points where it used to take the entry away (issue 17):
/// right after the compression (the key's lock is released; linking into bin/ comes later), and after the link.
/// The build holds the entry's use lock until it ends, so prune keeps it; once the build is over, prune deletes it.
/// </summary>
[Collection(PackedFeedTests.Name)]
public class CacheRaceTests(PackedFeed feed, ITestOutputHelper output)
{
    private static string PruneAfter(string target, string name) => $"""
          <Target Name="{name}" AfterTargets="{target}">
            <Exec Command="dotnet &quot;$(_LowRankPackagedTool)&quot; cache prune --max-size 0B --older-than 0d" />
          </Target>
        """;

    [RequiresCompressFact]
    public void Cache_prune_between_compressed_and_linking_keeps_the_entry_the_build_is_using()
    {
        using var fixture = new FixtureProject(feed, "prunerace");
        var project = fixture.WriteApp("app", $"""    <CompressedModel Include="{TestModels.SourceModel}" Method="svd" Ratio="0.5" OutputName="Moby" Device="cpu" />""");
        File.WriteAllText(project, File.ReadAllText(project).Replace("</Project>",
            PruneAfter("_LowRankCompressMisses", "PruneAfterCompress") + PruneAfter("_LowRankLinkModelFilesToOutputDirectory", "PruneAfterLink") + "</Project>", StringComparison.Ordinal));

        var build = fixture.Run("app", "build", "-nologo").ShouldSucceed();
        output.WriteLine(build.Output);
        Assert.Contains("LowRank: compressed", build.Output, StringComparison.Ordinal);
        Assert.Equal(2, Regex.Count(build.Output, @"kept \(in use by a build\)"));
        Assert.DoesNotContain(" deleted", build.Output, StringComparison.Ordinal);
        var weights = fixture.PathOf("app", "bin", "Debug", "net10.0", "models", "Moby", "model.safetensors");
        Assert.True(File.Exists(weights), build.Output);
        var cache = new ModelCache(fixture.Cache);
        var entry = Assert.Single(cache.List());
        Assert.Empty(ModelCache.Verify(entry));
        Assert.Empty(Directory.EnumerateFileSystemEntries(cache.TempFolder));

        // A cache hit is protected the same way (the use lock is taken before the build looks for the entry).
        var hit = fixture.Run("app", "build", "-nologo").ShouldSucceed();
        Assert.DoesNotContain("LowRank: compressing", hit.Output, StringComparison.Ordinal);
        Assert.Equal(2, Regex.Count(hit.Output, @"kept \(in use by a build\)"));

        // With no build running, the same prune deletes it: the build's locks ended with the build.
        var prune = Dotnet.Run(fixture.Root, fixture.Environment, "exec", feed.PackagedTool, "cache", "prune", "--max-size", "0B", "--older-than", "0d").ShouldSucceed();
        Assert.Contains("deleted", prune.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("1601", prune.Output, StringComparison.Ordinal);
        Assert.Empty(cache.List());
        Assert.True(File.Exists(weights)); // bin/ keeps its hard link
    }
}
