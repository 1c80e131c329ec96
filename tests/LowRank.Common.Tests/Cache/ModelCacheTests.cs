using System.Runtime.Versioning;
using LowRank.Cache;

namespace LowRank.Tests.Cache;

[SupportedOSPlatform("linux")] // read-only checks use Unix file modes
public class ModelCacheTests
{
    private static CacheKey Key(double ratio = 0.5) => CacheKey.Create("svd", ratio, "sha256:00", null, null, null, null, null, "test");

    /// <summary>What a compressor run does to the temp folder it is given: creates it and writes files.</summary>
    private static void WriteOutput(string folder, string weights)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), "{}");
        File.WriteAllText(Path.Combine(folder, "model.safetensors"), weights);
    }

    [Fact]
    public void Commit_makes_an_entry_with_its_record_and_read_only_files()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("cache"));
        var key = Key();
        Assert.Null(cache.TryGet(key.Hash));
        using (var held = cache.Lock(key.Hash, TimeSpan.FromSeconds(5), CancellationToken.None))
        {
            var output = cache.PrepareTemp(held, key.Hash);
            Assert.False(Directory.Exists(output));
            WriteOutput(output, "w1");
            cache.Commit(held, key, output);
        }
        var entry = cache.TryGet(key.Hash);
        Assert.NotNull(entry);
        Assert.Equal(["config.json", "model.safetensors"], entry.Record.Files.Select(f => f.Path));
        Assert.Equal("svd", entry.Record.KeyFields["method"]!.GetValue<string>());
        Assert.Empty(ModelCache.Verify(entry));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            File.GetUnixFileMode(Path.Combine(entry.Folder, "model.safetensors")));
        Assert.Single(cache.List());
    }

    [Fact]
    public void Commit_with_expected_files_accepts_exactly_those_and_refuses_anything_else()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("cache"));
        var key = Key();
        var expected = new List<CacheFile>
        {
            new("config.json", 2, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("{}"u8))),
            new("model.safetensors", 2, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("w1"u8))),
        };
        using var held = cache.Lock(key.Hash, TimeSpan.FromSeconds(5), CancellationToken.None);

        var tampered = cache.PrepareTemp(held, key.Hash);
        WriteOutput(tampered, "w2"); // same size, other bytes
        var e = Assert.Throws<LrkException>(() => cache.Commit(held, key, tampered, expected));
        Assert.Equal(ErrorCodes.HashMismatch, e.Code);
        Assert.Contains("model.safetensors: SHA-256", e.Message, StringComparison.Ordinal);
        Assert.Null(cache.TryGet(key.Hash));
        Assert.False(Directory.Exists(cache.EntryFolder(key.Hash)));

        var extra = cache.PrepareTemp(held, key.Hash);
        WriteOutput(extra, "w1");
        File.WriteAllText(Path.Combine(extra, "extra.bin"), "x");
        Assert.Contains("extra.bin: not expected", Assert.Throws<LrkException>(() => cache.Commit(held, key, extra, expected)).Message, StringComparison.Ordinal);

        var good = cache.PrepareTemp(held, key.Hash);
        WriteOutput(good, "w1");
        Assert.Equal(expected, cache.Commit(held, key, good, expected).Record.Files);
    }

    [Fact]
    public void A_folder_without_its_record_is_not_an_entry_and_the_next_writer_clears_it()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("cache"));
        var key = Key();
        WriteOutput(cache.EntryFolder(key.Hash), "torn"); // a crash after the rename, before the record
        WriteOutput(Path.Combine(cache.TempFolder, key.Hash + ".1.abc"), "orphan"); // a crash mid-compression
        Assert.Null(cache.TryGet(key.Hash));
        Assert.Empty(cache.List());
        using var held = cache.Lock(key.Hash, TimeSpan.FromSeconds(5), CancellationToken.None);
        cache.PrepareTemp(held, key.Hash);
        Assert.False(Directory.Exists(cache.EntryFolder(key.Hash)));
        Assert.Empty(Directory.EnumerateDirectories(cache.TempFolder));
    }

    [Fact]
    public void Concurrent_writers_of_one_key_compress_once()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("cache"));
        var key = Key();
        var compressions = 0;
        var waits = 0;
        void Build()
        {
            // What the MSBuild task does: check, lock, check again, compress, commit.
            if (cache.TryGet(key.Hash) is not null) return;
            using var held = cache.Lock(key.Hash, TimeSpan.FromSeconds(30), CancellationToken.None, () => Interlocked.Increment(ref waits));
            if (cache.TryGet(key.Hash) is not null) return;
            Interlocked.Increment(ref compressions);
            var output = cache.PrepareTemp(held, key.Hash);
            WriteOutput(output, "w");
            Thread.Sleep(300);
            cache.Commit(held, key, output);
        }
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(Build)).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(1, compressions);
        Assert.True(waits >= 1, "the other builds should have waited for the lock");
        Assert.NotNull(cache.TryGet(key.Hash));
    }

    [Fact]
    public void Verify_reports_a_changed_file()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("cache"));
        var key = Key();
        using (var held = cache.Lock(key.Hash, TimeSpan.FromSeconds(5), CancellationToken.None))
        {
            var output = cache.PrepareTemp(held, key.Hash);
            WriteOutput(output, "w1");
            cache.Commit(held, key, output);
        }
        var entry = cache.TryGet(key.Hash)!;
        var weights = Path.Combine(entry.Folder, "model.safetensors");
        File.SetUnixFileMode(weights, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(weights, "w2");
        var problems = ModelCache.Verify(entry);
        Assert.Contains(problems, p => p.StartsWith("model.safetensors: SHA-256", StringComparison.Ordinal));
    }

    [Fact]
    public void Prune_deletes_old_and_oversize_entries_but_never_a_locked_one()
    {
        using var temp = new TempFolder();
        var cache = new ModelCache(temp.Combine("cache"));
        var keys = new[] { Key(0.1), Key(0.2), Key(0.3) };
        foreach (var key in keys)
        {
            using var held = cache.Lock(key.Hash, TimeSpan.FromSeconds(5), CancellationToken.None);
            var output = cache.PrepareTemp(held, key.Hash);
            WriteOutput(output, new string('w', 1000));
            cache.Commit(held, key, output);
        }
        var old = DateTime.UtcNow.AddDays(-40);
        foreach (var key in keys.Take(2)) File.SetLastWriteTimeUtc(Path.Combine(cache.EntryFolder(key.Hash), CacheEntry.RecordFileName), old);

        using (cache.TryLock(keys[0].Hash))
        {
            var outcomes = cache.Prune(TimeSpan.FromDays(30), null);
            Assert.Equal("kept (locked)", outcomes.Single(o => o.Key == keys[0].Hash).Action);
            Assert.Equal("deleted", outcomes.Single(o => o.Key == keys[1].Hash).Action);
            Assert.Equal("kept", outcomes.Single(o => o.Key == keys[2].Hash).Action);
        }
        Assert.NotNull(cache.TryGet(keys[0].Hash));
        Assert.Null(cache.TryGet(keys[1].Hash));
        Assert.False(Directory.Exists(cache.EntryFolder(keys[1].Hash)));

        var bySize = cache.Prune(null, maxTotalBytes: 1500);
        Assert.Equal("deleted", bySize.Single(o => o.Key == keys[0].Hash).Action);
        Assert.NotNull(cache.TryGet(keys[2].Hash));
    }
}
