using LowRank.Cache;

namespace LowRank.Tests.Cache;

/// <summary>The one hub-cache resolver (the engine's ModelLocator and the MSBuild tasks both use it): @revision, refs,
/// commits, the single-snapshot fallback and XDG_CACHE_HOME, which the tasks' old copy did not honour.</summary>
public sealed class HuggingFaceCacheTests : IDisposable
{
    private const string Main = "1111111111111111111111111111111111111111";
    private const string Tagged = "2222222222222222222222222222222222222222";
    private readonly TempFolder temp = new();

    public void Dispose() => temp.Dispose();

    private string Hub => temp.Combine("hub");

    private string Snapshot(string repo, string commit)
    {
        var folder = temp.Combine("hub", repo, "snapshots", commit);
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>The snapshot of commit <see cref="Main"/>, named by refs/main.</summary>
    private string MainSnapshot(string repo)
    {
        var folder = Snapshot(repo, Main);
        temp.Write($"hub/{repo}/refs/main", Main);
        return folder;
    }

    [Fact]
    public void Revisions_come_from_the_id_or_the_argument_and_refs_or_commits_name_snapshots()
    {
        var main = MainSnapshot("models--acme--tiny");
        var tagged = Snapshot("models--acme--tiny", Tagged);
        temp.Write("hub/models--acme--tiny/refs/v2", Tagged + "\n");
        Assert.Equal(main, HuggingFaceCache.ResolveSnapshot("acme/tiny", null, Hub));
        Assert.Equal(tagged, HuggingFaceCache.ResolveSnapshot("acme/tiny@v2", null, Hub));
        Assert.Equal(tagged, HuggingFaceCache.ResolveSnapshot("acme/tiny", "v2", Hub));
        Assert.Equal(tagged, HuggingFaceCache.ResolveSnapshot("acme/tiny@main", Tagged, Hub));
        Assert.Equal(main, HuggingFaceCache.ResolveSnapshot($"acme/tiny@{Main}", null, Hub));
        Assert.Equal(tagged, HuggingFaceCache.ResolveSnapshot($"acme/tiny@{Tagged}", null, Hub));
        Assert.Equal(main, HuggingFaceCache.ResolveSnapshot("acme/tiny@main", null, Hub));
        var e = Assert.Throws<LrkException>(() => HuggingFaceCache.ResolveSnapshot("acme/tiny", "nope", Hub));
        Assert.Equal(ErrorCodes.ModelNotFound, e.Code);
        Assert.Contains("refs", e.Message, StringComparison.Ordinal);
        // A revision from MSBuild metadata never reaches outside refs/.
        Assert.Equal(ErrorCodes.ModelNotFound, Assert.Throws<LrkException>(() => HuggingFaceCache.ResolveSnapshot("acme/tiny", "../../x", Hub)).Code);
        Assert.True(HuggingFaceCache.LooksLikeId("acme/tiny@v2"));
    }

    [Fact]
    public void An_unknown_revision_and_a_ref_to_a_missing_snapshot_say_where_they_looked()
    {
        MainSnapshot("models--acme--tiny");
        var unknown = Assert.Throws<LrkException>(() => HuggingFaceCache.ResolveSnapshot("acme/tiny@nope", null, Hub));
        Assert.Equal(ErrorCodes.ModelNotFound, unknown.Code);
        Assert.Contains(Path.Combine("refs", "nope"), unknown.Message, StringComparison.Ordinal);

        temp.Write("hub/models--acme--tiny/refs/gone", Tagged);
        var dangling = Assert.Throws<LrkException>(() => HuggingFaceCache.ResolveSnapshot("acme/tiny@gone", null, Hub));
        Assert.Equal(ErrorCodes.ModelNotFound, dangling.Code);
        Assert.Contains("not in the cache", dangling.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_id_whose_revision_climbs_out_of_refs_is_not_an_id()
    {
        MainSnapshot("models--acme--tiny");
        var e = Assert.Throws<LrkException>(() => HuggingFaceCache.ResolveSnapshot("acme/tiny@main/../../x", null, Hub));
        Assert.Equal(ErrorCodes.ModelNotFound, e.Code);
        Assert.Contains("not a Hugging Face id", e.Message, StringComparison.Ordinal);
        Assert.False(HuggingFaceCache.LooksLikeId("acme/tiny@main/../../x"));
    }

    [Fact]
    public void A_single_snapshot_without_refs_is_used_and_two_are_ambiguous()
    {
        var only = Snapshot("models--acme--copied", Main);
        Assert.Equal(only, HuggingFaceCache.ResolveSnapshot("acme/copied", null, Hub));
        Snapshot("models--acme--copied", Tagged);
        var e = Assert.Throws<LrkException>(() => HuggingFaceCache.ResolveSnapshot("acme/copied", null, Hub));
        Assert.Contains("2 snapshots", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_hub_folder_follows_HF_HUB_CACHE_then_HF_HOME_then_XDG_CACHE_HOME()
    {
        string?[] saved = [Environment.GetEnvironmentVariable("HF_HUB_CACHE"), Environment.GetEnvironmentVariable("HF_HOME"), Environment.GetEnvironmentVariable("XDG_CACHE_HOME")];
        try
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", null);
            Environment.SetEnvironmentVariable("HF_HOME", null);
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", temp.Combine("xdg"));
            Assert.Equal(temp.Combine("xdg", "huggingface", "hub"), HuggingFaceCache.HubFolder);
            Environment.SetEnvironmentVariable("HF_HOME", temp.Combine("hf"));
            Assert.Equal(temp.Combine("hf", "hub"), HuggingFaceCache.HubFolder);
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", Hub);
            Assert.Equal(Hub, HuggingFaceCache.HubFolder);
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", saved[0]);
            Environment.SetEnvironmentVariable("HF_HOME", saved[1]);
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", saved[2]);
        }
    }
}
