using System.IO.Compression;
using System.Text.RegularExpressions;
using LowRank.Cache;

namespace LowRank.Build.Tests;

/// <summary>
/// Remote cache packages that are not entries, on a real folder feed, fetched by a real build (issue 17): empty,
/// truncated and non-zip files and packages with parts outside <c>entry/</c> are LRK5003 at the item (never
/// LRK0001), install nothing, and a well-formed package of the same entry is then fetched.
/// </summary>
[Collection(PackedFeedTests.Name)]
public class DamagedRemotePackageTests(PackedFeed feed, ITestOutputHelper output)
{
    [Fact]
    public void Empty_truncated_non_zip_and_off_layout_packages_are_LRK5003_and_install_nothing()
    {
        using var fixture = new FixtureProject(feed, "badpkg");
        var model = fixture.WriteSourceModel("model");
        var project = fixture.WriteApp("app", """    <CompressedModel Include="../model" Ratio="0.5" OutputName="M" />""",
            extraProperties: "    <LowRankRemoteCache>../feed</LowRankRemoteCache>");
        var resolved = CacheSeeding.ResolvedModel(fixture, "app");
        var key = CacheKey.Parse(resolved.GetProperty("KeyText").GetString()!);

        // A well-formed package of an entry for that key, made the way the push makes them (entry/ + NuGet parts).
        var seedCache = new ModelCache(fixture.PathOf("seed-cache"));
        CacheEntry entry;
        using (var held = seedCache.Lock(key.Hash, TimeSpan.FromSeconds(10), CancellationToken.None))
        {
            var temp = seedCache.PrepareTemp(held, key.Hash);
            Directory.CreateDirectory(temp);
            foreach (var file in Directory.EnumerateFiles(model)) File.Copy(file, Path.Combine(temp, Path.GetFileName(file)));
            entry = seedCache.Commit(held, key, temp);
        }
        var id = $"LowRank.Cache.{key.Hash}";
        byte[] Package(Action<ZipArchive>? extra = null)
        {
            using var memory = new MemoryStream();
            using (var zip = new ZipArchive(memory, ZipArchiveMode.Create, leaveOpen: true))
            {
                void Add(string name, byte[] bytes) { using var s = zip.CreateEntry(name).Open(); s.Write(bytes); }
                Add($"{id}.nuspec", System.Text.Encoding.UTF8.GetBytes($"""
                    <?xml version="1.0" encoding="utf-8"?>
                    <package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"><metadata><id>{id}</id><version>1.0.0</version><authors>t</authors><description>t</description><packageTypes><packageType name="LowRankCacheEntry" version="1.0" /></packageTypes></metadata></package>
                    """));
                foreach (var file in entry.Record.Files) Add($"entry/{file.Path}", File.ReadAllBytes(entry.FilePath(file)));
                Add("entry/entry.json", File.ReadAllBytes(Path.Combine(entry.Folder, CacheEntry.RecordFileName)));
                extra?.Invoke(zip);
            }
            return memory.ToArray();
        }
        var good = Package();
        var cases = new (string Name, byte[] Bytes)[]
        {
            ("empty", []),
            ("truncated", good[..(good.Length / 2)]),
            ("not a zip", "<html>404</html>"u8.ToArray()),
            ("extra file outside entry/", Package(zip => { using var s = zip.CreateEntry("tools/install.ps1").Open(); s.Write("x"u8); })),
            ("ENTRY/ case variant", Package(zip => { using var s = zip.CreateEntry("ENTRY/model.safetensors").Open(); s.Write("x"u8); })),
        };
        var nupkg = fixture.PathOf("feed", $"{id}.1.0.0.nupkg");
        Directory.CreateDirectory(fixture.PathOf("feed"));
        var cache = new ModelCache(fixture.Cache);
        foreach (var (name, bytes) in cases)
        {
            File.WriteAllBytes(nupkg, bytes);
            var result = fixture.Run("app", "build", "-nologo", "-p:LowRankCompressOnMiss=false");
            output.WriteLine($"--- {name}\n{result.Output}");
            Assert.NotEqual(0, result.ExitCode);
            FixtureProject.AssertDiagnosticAt(result.Output, project, "CompressedModel", $@"error LRK5003: remote cache package {Regex.Escape(id)} 1\.0\.0 from .* (is damaged|is not a LowRank cache entry)");
            Assert.DoesNotContain("LRK0001", result.Output, StringComparison.Ordinal);
            Assert.Empty(cache.List());
            Assert.False(Directory.Exists(cache.EntryFolder(key.Hash)), name);
            Assert.Empty(Directory.EnumerateFileSystemEntries(cache.TempFolder));
        }

        File.WriteAllBytes(nupkg, good);
        var fetched = fixture.Run("app", "build", "-nologo", "-p:LowRankCompressOnMiss=false").ShouldSucceed();
        Assert.Contains("LowRank: fetched", fetched.Output, StringComparison.Ordinal);
        Assert.Empty(ModelCache.Verify(Assert.Single(cache.List())));
    }
}
