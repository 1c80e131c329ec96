using System.IO.Compression;
using System.Runtime.Versioning;
using System.Text.Json.Nodes;
using LowRank.Cache;

namespace LowRank.Tests.Cache;

/// <summary>
/// Issue 17's cache hygiene on a real cache folder: orphans of every temp name are cleared by the key's next writer,
/// an entry in use is never pruned, prune reports times it read before deleting, and a record or package that
/// cannot describe an entry is a coded error.
/// </summary>
[SupportedOSPlatform("linux")]
public class CacheHygieneTests
{
    private static CacheKey Key(double ratio = 0.5) => CacheKey.Create("svd", ratio, "sha256:00", null, null, null, null, null, "test");

    private static CacheEntry Commit(ModelCache cache, CacheKey key, string weights = "w")
    {
        using var held = cache.Lock(key.Hash, TimeSpan.FromSeconds(5), CancellationToken.None);
        var output = cache.PrepareTemp(held, key.Hash);
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "config.json"), "{}");
        File.WriteAllText(Path.Combine(output, "model.safetensors"), weights);
        return cache.Commit(held, key, output);
    }

    [Fact]
    public void The_next_writer_of_a_key_removes_the_compressors_dot_staging_folder_and_files_but_not_other_keys_temps()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("cache"));
        var key = Key();
        var other = Key(0.3);
        // What a kill during the tool's write or digest stage leaves: ArtifactWriter stages next to --out, dot-named.
        var staging = Path.Combine(cache.TempFolder, $".{key.Hash}.4242.{Guid.NewGuid():N}.lowrank-{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(Path.Combine(staging, "sub"));
        File.WriteAllText(Path.Combine(staging, "sub", "model.safetensors"), "half");
        File.WriteAllText(Path.Combine(cache.TempFolder, $".{key.Hash}.4242.x.tmp"), "half a file");
        var outFolder = Path.Combine(cache.TempFolder, $"{key.Hash}.4242.{Guid.NewGuid():N}");
        Directory.CreateDirectory(outFolder);
        var othersStaging = Path.Combine(cache.TempFolder, $".{other.Hash}.1.{Guid.NewGuid():N}.lowrank-x.tmp");
        Directory.CreateDirectory(othersStaging);

        using (var held = cache.Lock(key.Hash, TimeSpan.FromSeconds(5), CancellationToken.None)) cache.PrepareTemp(held, key.Hash);

        Assert.Equal([Path.GetFileName(othersStaging)], Directory.EnumerateFileSystemEntries(cache.TempFolder).Select(Path.GetFileName));

        // And prune takes a dot-named orphan for the key it belongs to (not for a key named "").
        cache.Prune(null, long.MaxValue);
        Assert.Empty(Directory.EnumerateFileSystemEntries(cache.TempFolder));
    }

    [Fact]
    public void Prune_never_deletes_an_entry_a_build_is_using_and_deletes_it_once_released()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("cache"));
        var key = Key();
        Commit(cache, key);
        var (entry, use) = cache.Use(key.Hash, TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.NotNull(entry);
        using (use)
        {
            // A second build may use it at the same time (shared), and the key's writers are not blocked.
            using (var second = CacheLock.TryAcquireUse(cache.LocksFolder, key.Hash)) Assert.NotNull(second);
            using (var writer = cache.TryLock(key.Hash)) Assert.NotNull(writer);

            var outcome = Assert.Single(cache.Prune(TimeSpan.Zero, 0));
            Assert.Equal("kept (in use by a build)", outcome.Action);
            Assert.Empty(ModelCache.Verify(cache.TryGet(key.Hash)!));
        }
        Assert.Equal("deleted", Assert.Single(cache.Prune(TimeSpan.Zero, 0)).Action);
        Assert.Null(cache.TryGet(key.Hash));

        // A use taken while nothing is there finds nothing, and does not stop a writer.
        var (none, emptyUse) = cache.Use(key.Hash, TimeSpan.FromSeconds(5), CancellationToken.None);
        using (emptyUse)
        {
            Assert.Null(none);
            Commit(cache, key);
        }
    }

    [Fact]
    public void Prune_and_list_of_a_cache_folder_that_does_not_exist_find_nothing_and_create_nothing()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("no", "such", "cache"));
        Assert.Empty(cache.Prune(TimeSpan.Zero, 0));
        Assert.Empty(cache.Prune(TimeSpan.Zero, 0, dryRun: true));
        Assert.Empty(cache.List());
        Assert.False(Directory.Exists(cache.Root));
    }

    [Fact]
    public void Prune_reports_the_last_use_it_read_before_deleting_and_never_used_entries_as_such()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("cache"));
        var fresh = Commit(cache, Key(0.1));
        var used = Commit(cache, Key(0.2));
        var usedAt = new DateTime(2026, 3, 4, 5, 6, 0, DateTimeKind.Utc).AddYears(DateTime.UtcNow.Year - 2026 + 1); // after creation
        File.SetLastWriteTimeUtc(Path.Combine(used.Folder, CacheEntry.RecordFileName), usedAt);

        var outcomes = cache.Prune(TimeSpan.FromDays(-3650), 0);
        Assert.All(outcomes, o => Assert.Equal("deleted", o.Action));
        Assert.Equal("never used", outcomes.Single(o => o.Key == fresh.Key).Usage);
        Assert.Equal(usedAt, outcomes.Single(o => o.Key == used.Key).LastUsedUtc);
        Assert.Equal($"used {usedAt:yyyy-MM-dd HH:mm}", outcomes.Single(o => o.Key == used.Key).Usage);
        Assert.DoesNotContain(outcomes, o => o.LastUsedUtc.Year < 1700);
    }

    [Fact]
    public void A_record_listing_a_file_twice_or_outside_the_entry_is_LRK5003_for_builds_and_damaged_for_verify()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("cache"));
        var key = Key();
        var entry = Commit(cache, key);
        var recordPath = Path.Combine(entry.Folder, CacheEntry.RecordFileName);
        foreach (var (edit, expected) in new (Func<JsonArray, JsonNode>, string)[]
        {
            (files => files[1]!.DeepClone(), "lists model.safetensors twice"),
            (files => new JsonObject { ["path"] = "../escape", ["size"] = 1, ["sha256"] = new string('0', 64) }, "not a plain relative path"),
        })
        {
            var record = JsonNode.Parse(File.ReadAllText(recordPath))!.AsObject();
            var files = record["files"]!.AsArray();
            files.Add(edit(files));
            File.SetUnixFileMode(recordPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.WriteAllText(recordPath, record.ToJsonString());

            var e = Assert.Throws<LrkException>(() => cache.TryGet(key.Hash));
            Assert.Equal(ErrorCodes.CacheCorrupt, e.Code);
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
            var listed = Assert.Single(cache.List());
            Assert.Contains(ModelCache.Verify(listed), p => p.Contains(expected, StringComparison.Ordinal));
            File.WriteAllText(recordPath, ModelCache.SerializeRecord(entry.Record));
            Assert.Empty(ModelCache.Verify(cache.TryGet(key.Hash)!));
        }
        // prune can still delete a damaged entry
        var record2 = JsonNode.Parse(File.ReadAllText(recordPath))!.AsObject();
        record2["files"]!.AsArray().Add(record2["files"]![0]!.DeepClone());
        File.WriteAllText(recordPath, record2.ToJsonString());
        Assert.Equal("deleted", Assert.Single(cache.Prune(TimeSpan.Zero, 0)).Action);
    }

    public static TheoryData<string, string[], string> BadLayouts => new()
    {
        { "extra file outside entry/", ["[Content_Types].xml", "x.nuspec", "entry/entry.json", "extra.bin"], "'extra.bin' is outside 'entry/'" },
        { "zip-root ../x", ["x.nuspec", "entry/entry.json", "../x"], "'../x' is not a plain relative path" },
        { "traversal inside entry/", ["x.nuspec", "entry/../../x", "entry/entry.json"], "not a plain relative path" },
        { "ENTRY/ case variant", ["x.nuspec", "entry/entry.json", "ENTRY/model.safetensors"], "'ENTRY/model.safetensors' is not under 'entry/' (case differs)" },
        { "duplicate entry", ["x.nuspec", "entry/entry.json", "entry/model.safetensors", "entry/model.safetensors"], "'entry/model.safetensors' is in the zip twice" },
        { "duplicate by case", ["x.nuspec", "entry/entry.json", "entry/a.bin", "entry/A.bin"], "'entry/A.bin' is in the zip twice" },
        { "absolute", ["x.nuspec", "/etc/passwd"], "not a plain relative path" },
    };

    [Theory]
    [MemberData(nameof(BadLayouts))]
    public void A_package_with_anything_but_NuGet_parts_and_entry_files_is_not_an_entry(string what, string[] names, string problem)
    {
        using var temp = new TempFolder();
        var nupkg = temp.File("p.nupkg");
        using (var zip = ZipFile.Open(nupkg, ZipArchiveMode.Create))
            foreach (var name in names)
                using (var s = zip.CreateEntry(name).Open()) s.Write("x"u8);
        var e = Assert.Throws<LrkException>(() => CachePackageLayout.Open(nupkg, what).Dispose());
        Assert.Equal(ErrorCodes.CacheCorrupt, e.Code);
        Assert.Contains(problem, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_valid_layout_opens_and_empty_truncated_or_non_zip_files_are_LRK5003()
    {
        using var temp = new TempFolder();
        var nupkg = temp.File("good.nupkg");
        using (var zip = ZipFile.Open(nupkg, ZipArchiveMode.Create))
            foreach (var name in new[] { "_rels/.rels", "LowRank.Cache.x.nuspec", "[Content_Types].xml", "package/services/metadata/core-properties/a.psmdcp", "entry/entry.json", "entry/sub/model.safetensors" })
                using (var s = zip.CreateEntry(name).Open()) s.Write(new byte[4096]);
        using (var ok = CachePackageLayout.Open(nupkg, "good")) Assert.Equal(6, ok.Entries.Count);

        var bytes = File.ReadAllBytes(nupkg);
        foreach (var (name, content) in new[] { ("empty", Array.Empty<byte>()), ("truncated", bytes[..(bytes.Length / 2)]), ("text", "not a zip at all"u8.ToArray()), ("tail cut", bytes[..^10]) })
        {
            var path = temp.File(name + ".nupkg");
            File.WriteAllBytes(path, content);
            var e = Assert.Throws<LrkException>(() => CachePackageLayout.Open(path, name).Dispose());
            Assert.Equal(ErrorCodes.CacheCorrupt, e.Code);
        }
    }
}
