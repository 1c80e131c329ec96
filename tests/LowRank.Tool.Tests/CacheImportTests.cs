using LowRank.Bench.Fuzz;
using LowRank.Cache;

namespace LowRank.Tool.Tests;

/// <summary>`cache import` on real packages: a good one is installed once and verifies; bad ones are coded errors and install nothing.</summary>
public class CacheImportTests
{
    [Fact]
    public void A_good_package_is_installed_once_and_damaged_or_off_layout_ones_install_nothing()
    {
        using var home = new TempFolder();
        var seed = CachePackageSeed.Create(home.Path, RepoPaths.LlamaMoby, 5);
        var env = Tool.CleanEnvironment(home.Path);
        var cache = new ModelCache(home.Combine("import-cache"));
        string Write(string name, IEnumerable<(string, byte[])> parts)
        {
            var path = home.File(name);
            File.WriteAllBytes(path, CachePackageSeed.Zip(parts));
            return path;
        }

        var bad = new (string Name, string Code, IEnumerable<(string, byte[])> Parts)[]
        {
            ("case.nupkg", ErrorCodes.CacheCorrupt, seed.Parts.Append(("ENTRY/model.safetensors", "x"u8.ToArray()))),
            ("rootfile.nupkg", ErrorCodes.CacheCorrupt, seed.Parts.Append(("../x", "x"u8.ToArray()))),
            ("flipped.nupkg", ErrorCodes.HashMismatch, seed.Parts.Select(p => p.Name == "entry/model.safetensors" ? (p.Name, p.Bytes.Select((b, i) => i == 0 ? (byte)(b ^ 1) : b).ToArray()) : p)),
        };
        foreach (var (name, code, parts) in bad)
        {
            var run = Tool.Run(home.Path, env, "cache", "import", Write(name, parts), "--cache", cache.Root);
            Assert.Equal(ExitCodes.Failure, run.ExitCode);
            Assert.Contains($"error {code}:", string.Join("\n", run.Stderr), StringComparison.Ordinal);
            Assert.Empty(cache.List());
            Assert.True(!Directory.Exists(cache.TempFolder) || !Directory.EnumerateFileSystemEntries(cache.TempFolder).Any(), name);
        }

        var good = Write("good.nupkg", seed.Parts);
        var first = Tool.Run(home.Path, env, "cache", "import", good, "--cache", cache.Root);
        Assert.Equal(0, first.ExitCode);
        Assert.Contains("installed", string.Join("\n", first.Stdout), StringComparison.Ordinal);
        var entry = Assert.Single(cache.List());
        Assert.Equal(seed.Entry.Key, entry.Key);
        Assert.Empty(ModelCache.Verify(entry));
        Assert.Equal(seed.Entry.Record.Files, entry.Record.Files);
        var again = Tool.Run(home.Path, env, "cache", "import", good, "--cache", cache.Root);
        Assert.Equal(0, again.ExitCode);
        Assert.Contains("already in the cache", string.Join("\n", again.Stdout), StringComparison.Ordinal);
    }
}
