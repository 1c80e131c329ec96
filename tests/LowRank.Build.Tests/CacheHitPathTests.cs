using System.Security.Cryptography;

namespace LowRank.Build.Tests;

/// <summary>
/// The output side on a cache hit (entry seeded under the build's own key, see <see cref="CacheSeeding"/>): files in
/// bin/ hard-linked from the cache, the generated class, the second build's overhead, -question, publish, clean,
/// re-keying on a metadata change, and LowRank.Sdk packing consumed from a local feed.
/// </summary>
[Collection(PackedFeedTests.Name)]
public class CacheHitPathTests(PackedFeed feed, ITestOutputHelper output)
{
    /// <summary>The app checks every file of its model against the generated class's SHA-256s.</summary>
    private const string VerifyingProgram = """
        using System.Security.Cryptography;
        var verified = 0;
        foreach (var (path, size, sha256) in Tiny.Model.Files)
        {
            var file = Path.Combine(Tiny.Model.Directory, path);
            var actual = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
            if (actual != sha256 || new FileInfo(file).Length != size) { Console.WriteLine($"MISMATCH {path}"); return 1; }
            verified++;
        }
        Console.WriteLine($"verified {verified} files of {Tiny.Model.Name} ({Tiny.Model.Method}, ratio {Tiny.Model.Ratio}) in {Tiny.Model.RelativeDirectory}");
        return 0;
        """;

    [Fact]
    public void Hit_links_into_bin_compiles_the_class_skips_the_second_time_publishes_and_cleans()
    {
        using var fixture = new FixtureProject(feed, "hit");
        var source = fixture.WriteSourceModel("model");
        var project = fixture.WriteApp("app", """    <CompressedModel Include="../model" Method="svd" Ratio="0.5" OutputName="Tiny.Model" />""", VerifyingProgram);
        var resolved = CacheSeeding.ResolvedModel(fixture, "app");
        Assert.Equal("false", resolved.GetProperty("CacheHit").GetString());
        var entry = CacheSeeding.Seed(fixture, resolved, source);

        var first = fixture.Run("app", "build", "-nologo").ShouldSucceed();
        Assert.DoesNotContain("LowRank: compressing", first.Output, StringComparison.Ordinal);
        var binWeights = fixture.PathOf("app", "bin", "Debug", "net10.0", "models", "Tiny.Model", "model.safetensors");
        Assert.True(File.Exists(binWeights), first.Output);
        Assert.True(CacheSeeding.LinkCount(binWeights) >= 2, "bin/ should hold a hard link to the cache file");
        var run = Dotnet.Run(fixture.PathOf("app"), fixture.Environment, fixture.PathOf("app", "bin", "Debug", "net10.0", "app.dll")).ShouldSucceed();
        Assert.Contains("verified 2 files of Tiny.Model (svd, ratio 0.5) in models/Tiny.Model", run.Output, StringComparison.Ordinal);

        var second = fixture.Run("app", "build", "-nologo", "-clp:PerformanceSummary").ShouldSucceed();
        Assert.DoesNotContain("LowRank: compressing", second.Output, StringComparison.Ordinal);
        var overhead = CacheSeeding.LowRankTargetMilliseconds(second.Output, out var detail);
        output.WriteLine($"second build: {second.Elapsed.TotalSeconds:F1} s wall, LowRank targets {overhead} ms ({detail})");
        Console.WriteLine($"[overhead] cache-hit rebuild: LowRank targets {overhead} ms ({detail}); whole build {second.Elapsed.TotalSeconds:F1} s");
        Assert.True(overhead < 1000, $"LowRank targets took {overhead} ms on a no-change build: {detail}");

        var question = fixture.Run("app", "build", "-nologo", "-question");
        Assert.True(question.ExitCode == 0, "a no-change build must pass -question:\n" + question.Output);

        fixture.Run("app", "publish", "-nologo", "-o", fixture.PathOf("pub")).ShouldSucceed();
        var published = fixture.PathOf("pub", "models", "Tiny.Model", "model.safetensors");
        Assert.True(File.Exists(published));
        Assert.Equal(File.ReadAllBytes(Path.Combine(source, "model.safetensors")), File.ReadAllBytes(published));

        fixture.Run("app", "clean", "-nologo").ShouldSucceed();
        Assert.False(File.Exists(binWeights), "dotnet clean should remove the model files from bin/");
        Assert.False(File.Exists(fixture.PathOf("app", "obj", "Debug", "net10.0", "lowrank", "Tiny.Model.g.cs")));
        Assert.Empty(LowRank.Cache.ModelCache.Verify(entry)); // the cache keeps the entry, intact

        // Any metadata in the key re-keys: the seeded entry no longer matches.
        File.WriteAllText(project, File.ReadAllText(project).Replace("Ratio=\"0.5\"", "Ratio=\"0.4\"", StringComparison.Ordinal));
        var rekeyed = CacheSeeding.ResolvedModel(fixture, "app");
        Assert.NotEqual(entry.Key, rekeyed.GetProperty("Key").GetString());
        Assert.Equal("false", rekeyed.GetProperty("CacheHit").GetString());
    }

    [Fact]
    public void Sdk_project_packs_a_versioned_model_package_that_a_consumer_gets_in_bin_and_nuget_items_resolve_it()
    {
        using var fixture = new FixtureProject(feed, "sdk");
        var source = fixture.WriteSourceModel("model", seed: 7);
        fixture.Write("pack/pack.csproj", """
            <Project Sdk="LowRank.Sdk/0.1.0">
              <PropertyGroup>
                <PackageId>Tiny.Model.Package</PackageId>
                <Version>1.2.3</Version>
              </PropertyGroup>
              <ItemGroup>
                <CompressedModel Include="../model" Method="svd" Ratio="0.5" OutputName="tiny" />
              </ItemGroup>
            </Project>
            """);
        CacheSeeding.Seed(fixture, CacheSeeding.ResolvedModel(fixture, "pack"), source);
        var localFeed = fixture.PathOf("models-feed");
        fixture.Run("pack", "pack", "-nologo", "-o", localFeed).ShouldSucceed();
        var nupkg = Path.Combine(localFeed, "Tiny.Model.Package.1.2.3.nupkg");
        Assert.True(File.Exists(nupkg));
        using (var zip = System.IO.Compression.ZipFile.OpenRead(nupkg))
        {
            var names = zip.Entries.Select(e => e.FullName).ToList();
            Assert.Contains("lowrank/tiny/model.safetensors", names);
            Assert.Contains("lowrank/tiny/config.json", names);
            Assert.Contains("lowrank/manifests/tiny.json", names);
            Assert.Contains("buildTransitive/Tiny.Model.Package.targets", names);
            Assert.DoesNotContain(names, n => n.StartsWith("lib/", StringComparison.Ordinal));
        }

        // A consumer restores it from the local folder feed and gets the weights in bin/.
        fixture.AddFeed("models", localFeed);
        fixture.WriteConsumer("consumer", "Tiny.Model.Package", "1.2.3");
        fixture.Run("consumer", "build", "-nologo").ShouldSucceed();
        var consumed = fixture.PathOf("consumer", "bin", "Debug", "net10.0", "models", "tiny", "model.safetensors");
        Assert.True(File.Exists(consumed));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(source, "model.safetensors")))),
            Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(consumed))));

        // nuget:Id/Version as a source model: fetched from the feed by NuGet.Protocol into the packages folder and digested.
        var packages = feed.Packages;
        var installed = Path.Combine(packages, "tiny.model.package", "1.2.3");
        if (Directory.Exists(installed)) LowRank.Cache.ModelCache.DeleteTree(installed); // force a real download, not the restore's copy
        fixture.WriteApp("fromnuget", """    <CompressedModel Include="nuget:Tiny.Model.Package/1.2.3" OutputName="FromNuGet" />""");
        var fromNuGet = CacheSeeding.ResolvedModel(fixture, "fromnuget");
        Assert.StartsWith(installed, fromNuGet.GetProperty("SourceModel").GetString()!, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(installed, ".nupkg.metadata")));
    }
}
