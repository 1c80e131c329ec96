using System.IO.Compression;
using System.Text.RegularExpressions;
using LowRank.Cache;

namespace LowRank.Build.Tests;

/// <summary>
/// The remote cache on a real local folder feed: one machine compresses and pushes, a second machine (its own empty
/// LOWRANK_CACHE) fetches the entry instead of compressing, and a package altered on the feed is rejected.
/// </summary>
[Collection(PackedFeedTests.Name)]
public class RemoteCacheTests(PackedFeed feed, ITestOutputHelper output)
{
    [Fact]
    public void An_unreachable_feed_is_a_warning_and_the_build_goes_on_as_on_a_miss()
    {
        using var fixture = new FixtureProject(feed, "unreachable");
        fixture.WriteSourceModel("model");
        // Loopback port 9 (discard): nothing listens there, so the connection is refused at once.
        var project = fixture.WriteApp("app", """    <CompressedModel Include="../model" Ratio="0.5" />""",
            extraProperties: "    <LowRankRemoteCache>http://127.0.0.1:9/v3/index.json</LowRankRemoteCache>");
        var result = fixture.Run("app", "build", "-nologo", "-p:LowRankCompressOnMiss=false");
        Assert.NotEqual(0, result.ExitCode);
        FixtureProject.AssertDiagnosticAt(result.Output, project, "CompressedModel", @"warning LRK5007: cannot download from the remote cache http://127\.0\.0\.1:9/v3/index\.json: .*; treating it as a miss");
        FixtureProject.AssertDiagnosticAt(result.Output, project, "CompressedModel", "error LRK7004: ");
        Assert.DoesNotContain("LRK0001", result.Output, StringComparison.Ordinal);
    }

    [RequiresCompressFact]
    public void A_pushed_entry_is_fetched_by_a_clean_machine_without_compressing_and_a_tampered_package_is_rejected()
    {
        using var fixture = new FixtureProject(feed, "remote");
        // One app per machine, all with the same item and the feed as a path relative to the project.
        string App(string folder) => fixture.WriteApp(folder,
            $"""    <CompressedModel Include="{TestModels.SourceModel}" Method="svd" Ratio="0.5" OutputName="Moby" Device="cpu" />""",
            extraProperties: "    <LowRankRemoteCache>../remote-cache</LowRankRemoteCache>");
        App("app");
        var remote = fixture.PathOf("remote-cache");

        // Machine A: a miss everywhere, so it compresses, then pushes (LowRankRemoteCachePush=true).
        var a = fixture.Run("app", "build", "-nologo", "-p:LowRankRemoteCachePush=true").ShouldSucceed();
        Assert.Contains("is not in the remote cache", a.Output, StringComparison.Ordinal);
        Assert.Contains("LowRank: compressing", a.Output, StringComparison.Ordinal);
        Assert.Contains("LowRank: pushed", a.Output, StringComparison.Ordinal);
        var entry = Assert.Single(new ModelCache(fixture.Cache).List());
        var nupkg = Path.Combine(remote, $"LowRank.Cache.{entry.Key}.1.0.0.nupkg");
        Assert.True(File.Exists(nupkg), a.Output);

        // Machine B: empty local cache, compression forbidden: a miss would be LRK7004, so success means it was fetched.
        var cacheB = fixture.PathOf("cache-b");
        App("app-b");
        var b = Dotnet.Run(fixture.PathOf("app-b"), fixture.EnvironmentWithCache(cacheB), "build", "-nologo", "-p:LowRankCompressOnMiss=false").ShouldSucceed();
        output.WriteLine(b.Output);
        Assert.DoesNotContain("LowRank: compressing", b.Output, StringComparison.Ordinal);
        Assert.Contains($"LowRank: fetched {TestModels.SourceModel} (key {entry.Key[..12]}) from the remote cache {remote}", b.Output, StringComparison.Ordinal);
        var fetched = Assert.Single(new ModelCache(cacheB).List());
        Assert.Equal(entry.Key, fetched.Key);
        Assert.Empty(ModelCache.Verify(fetched));
        Assert.Equal(entry.Record.Files, fetched.Record.Files);
        Assert.Empty(Directory.EnumerateFileSystemEntries(new ModelCache(cacheB).TempFolder));
        var weights = fixture.PathOf("app-b", "bin", "Debug", "net10.0", "models", "Moby", "model.safetensors");
        Assert.Equal(entry.Record.Files.Single(f => f.Path == "model.safetensors").Sha256, DigestSidecar.HashFile(weights));

        // Someone changes one byte of the weights inside the package on the feed (size unchanged).
        using (var zip = ZipFile.Open(nupkg, ZipArchiveMode.Update))
        {
            var original = zip.GetEntry("entry/model.safetensors")!;
            byte[] bytes;
            using (var read = original.Open())
            using (var copy = new MemoryStream())
            {
                read.CopyTo(copy);
                bytes = copy.ToArray();
            }
            bytes[^1] ^= 0xFF;
            original.Delete();
            using var write = zip.CreateEntry("entry/model.safetensors").Open();
            write.Write(bytes);
        }

        // Machine C: empty cache, compression allowed. The package is rejected with LRK5002 at the item, nothing is
        // installed, and the build does not quietly compress around it.
        var cacheC = fixture.PathOf("cache-c");
        var project = App("app-c");
        var c = Dotnet.Run(fixture.PathOf("app-c"), fixture.EnvironmentWithCache(cacheC), "build", "-nologo");
        output.WriteLine(c.Output);
        Assert.NotEqual(0, c.ExitCode);
        FixtureProject.AssertDiagnosticAt(c.Output, project, "CompressedModel Include", $@"error LRK5002: remote cache package LowRank\.Cache\.{entry.Key} 1\.0\.0 from {Regex.Escape(remote)} was rejected and nothing was installed: its files do not match its entry\.json \(model\.safetensors: SHA-256 ");
        Assert.DoesNotContain("LowRank: compressing", c.Output, StringComparison.Ordinal);
        var cache = new ModelCache(cacheC);
        Assert.Empty(cache.List());
        Assert.Empty(Directory.EnumerateFileSystemEntries(cache.TempFolder));
        Assert.False(Directory.Exists(cache.EntryFolder(entry.Key)));
    }

    [RequiresCompressFact]
    public void A_private_http_feed_named_in_nuget_config_takes_the_push_and_serves_the_download_with_its_saved_login()
    {
        const string Source = "companycache";
        using var server = new AuthenticatedFeed("ci-bot", "s3cret-pass", "push-key-42");
        using var fixture = new FixtureProject(feed, "private");
        fixture.AddCredentialedFeed(Source, server.ServiceIndex, "ci-bot", "s3cret-pass");
        // LowRankRemoteCache names the source: its URL and its login come from nuget.config.
        string App(string folder, string ratio = "0.5") => fixture.WriteApp(folder,
            $"""    <CompressedModel Include="{TestModels.SourceModel}" Method="svd" Ratio="{ratio}" OutputName="Moby" Device="cpu" />""",
            extraProperties: $"    <LowRankRemoteCache>{Source}</LowRankRemoteCache>");
        Dictionary<string, string> Machine(string cache, params (string Name, string Value)[] extra)
        {
            var environment = fixture.EnvironmentWithCache(cache);
            foreach (var (name, value) in extra) environment[name] = value;
            return environment;
        }

        // Machine A compresses and pushes, with the API key from the environment variable.
        App("app");
        var a = Dotnet.Run(fixture.PathOf("app"), Machine(fixture.Cache, ("LOWRANK_REMOTE_CACHE_API_KEY", server.ApiKey)), "build", "-nologo", "-p:LowRankRemoteCachePush=true").ShouldSucceed();
        output.WriteLine(a.Output);
        var entry = Assert.Single(new ModelCache(fixture.Cache).List());
        Assert.Contains($"LowRank: pushed {TestModels.SourceModel} (key {entry.Key[..12]}", a.Output, StringComparison.Ordinal);
        Assert.NotNull(server.Package($"LowRank.Cache.{entry.Key}", "1.0.0"));
        var push = Assert.Single(server.Requests, r => r.Method == "PUT" && r.Authorized);
        Assert.Equal((server.ApiKey, 201), (push.ApiKey, push.Status));
        // The login was not sent blindly: the feed challenged (401) and NuGet answered with the saved credentials.
        Assert.Contains(server.Requests, r => !r.Authorized && r.Status == 401);

        // Machine B: empty cache, compression forbidden; success means the authenticated download happened.
        App("app-b");
        var cacheB = fixture.PathOf("cache-b");
        var b = Dotnet.Run(fixture.PathOf("app-b"), Machine(cacheB), "build", "-nologo", "-p:LowRankCompressOnMiss=false").ShouldSucceed();
        output.WriteLine(b.Output);
        Assert.Contains($"LowRank: fetched {TestModels.SourceModel} (key {entry.Key[..12]}) from the remote cache {server.ServiceIndex}", b.Output, StringComparison.Ordinal);
        Assert.Contains(server.Requests, r => r.Method == "GET" && r.Authorized && r.Status == 200 && r.Path.EndsWith($"lowrank.cache.{entry.Key}.1.0.0.nupkg", StringComparison.Ordinal));
        var fetched = Assert.Single(new ModelCache(cacheB).List());
        Assert.Equal(entry.Record.Files, fetched.Record.Files);
        Assert.Empty(ModelCache.Verify(fetched));

        // Machine C: a wrong password (NuGet's NuGetPackageSourceCredentials_<name> variable wins over nuget.config) is
        // a coded warning that says who was refused and where the login came from; the lookup counts as a miss.
        var project = App("app-c");
        var c = Dotnet.Run(fixture.PathOf("app-c"), Machine(fixture.PathOf("cache-c"), ($"NuGetPackageSourceCredentials_{Source}", "Username=ci-bot;Password=wrong")),
            "build", "-nologo", "-p:LowRankCompressOnMiss=false");
        output.WriteLine(c.Output);
        Assert.NotEqual(0, c.ExitCode);
        FixtureProject.AssertDiagnosticAt(c.Output, project, "CompressedModel Include", $@"warning LRK5009: the remote cache {Regex.Escape(server.ServiceIndex)} \(source '{Source}'\) refused the credentials \(401 Unauthorized\) when asked to download from it; NuGet presented the credentials of the environment variable NuGetPackageSourceCredentials_{Source}; treating it as a miss");
        Assert.Matches($@"LowRank error LRK7004: ", c.Output);
        Assert.DoesNotContain("LRK0001", c.Output, StringComparison.Ordinal);

        // Machine D compresses another ratio and pushes with a wrong key: the property wins over the (right) variable,
        // the feed answers 403, and the build warns with LRK5009 naming where the key came from, its outputs complete.
        App("app-d", ratio: "0.3");
        var d = Dotnet.Run(fixture.PathOf("app-d"), Machine(fixture.PathOf("cache-d"), ("LOWRANK_REMOTE_CACHE_API_KEY", server.ApiKey)),
            "build", "-nologo", "-p:LowRankRemoteCachePush=true", "-p:LowRankRemoteCacheApiKey=wrong-key").ShouldSucceed();
        output.WriteLine(d.Output);
        Assert.Matches(@"LowRank warning LRK5009: the remote cache .* refused to push to it \(403 Forbidden\); check the API key: it came from the property LowRankRemoteCacheApiKey", d.Output);
        Assert.Single(server.Packages);

        // Machine E has neither the property nor the variable, so the key would come from nuget.config's apikeys, which
        // NuGet encrypts with Windows DPAPI: here that is said with LRK5009 before anything is sent, not a bare 403.
        File.WriteAllText(fixture.PathOf("nuget.config"), File.ReadAllText(fixture.PathOf("nuget.config")).Replace("</configuration>",
            $"  <apikeys>\n    <add key=\"{server.ServiceIndex}\" value=\"AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA\" />\n  </apikeys>\n</configuration>", StringComparison.Ordinal));
        var pushes = server.Requests.Count(r => r.Method == "PUT");
        App("app-e", ratio: "0.4");
        var e = Dotnet.Run(fixture.PathOf("app-e"), Machine(fixture.PathOf("cache-e")), "build", "-nologo", "-p:LowRankRemoteCachePush=true").ShouldSucceed();
        output.WriteLine(e.Output);
        Assert.Contains($"LowRank warning LRK5009: the API key for {server.ServiceIndex} (source '{Source}') in nuget.config's apikeys cannot be decrypted here", e.Output, StringComparison.Ordinal);
        Assert.Equal(pushes, server.Requests.Count(r => r.Method == "PUT"));
    }
}
