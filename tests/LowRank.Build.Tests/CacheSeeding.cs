using System.Text.Json;
using LowRank.Cache;

namespace LowRank.Build.Tests;

/// <summary>
/// Puts an entry into a fixture's cache under the key the build itself computes, the way a prior build or a
/// remote cache would, so the output side of the MSBuild integration (bin/, publish/, clean, incrementality,
/// generated class, packing) is tested without running a compression. The entry's files are a copy of the source
/// model's files: the integration never interprets them. Compression itself is tested in CompressionTests.
/// </summary>
public static class CacheSeeding
{
    /// <summary>Asks the build for the resolved items (key, key text) through -getItem, without compressing.</summary>
    public static JsonElement ResolvedModel(FixtureProject fixture, string appFolder, int index = 0)
    {
        var result = fixture.Run(appFolder, "build", "-t:_LowRankResolveCompressedModels", "-getItem:_LowRankResolvedModel", "-nologo");
        result.ShouldSucceed();
        var json = PackedFeed.ParseLastJsonObject(result.Output);
        return json.GetProperty("Items").GetProperty("_LowRankResolvedModel")[index];
    }

    public static CacheEntry Seed(FixtureProject fixture, JsonElement resolved, string contentFolder)
    {
        var cache = new ModelCache(fixture.Cache);
        var key = CacheKey.Parse(resolved.GetProperty("KeyText").GetString()!);
        Assert.Equal(resolved.GetProperty("Key").GetString(), key.Hash);
        using var held = cache.Lock(key.Hash, TimeSpan.FromSeconds(10), CancellationToken.None);
        var temp = cache.PrepareTemp(held, key.Hash);
        Directory.CreateDirectory(temp);
        foreach (var file in Directory.EnumerateFiles(contentFolder)) File.Copy(file, Path.Combine(temp, Path.GetFileName(file)));
        return cache.Commit(held, key, temp);
    }

    /// <summary>Number of hard links to a file (stat %h): 2 or more means bin/ shares the cache file.</summary>
    public static int LinkCount(string file)
    {
        var stat = ProcessRunner.Run("stat", ["-c", "%h", file], Environment.CurrentDirectory).ShouldSucceed();
        var text = stat.StdoutText.Trim();
        return int.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The summed time of LowRank's targets in a -clp:PerformanceSummary log, in ms.</summary>
    public static double LowRankTargetMilliseconds(string output, out string detail)
    {
        var section = output[output.IndexOf("Target Performance Summary:", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("Task Performance Summary:", StringComparison.Ordinal)];
        var rows = section.Split('\n')
            .Select(l => l.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(p => p.Length >= 3 && p[1] == "ms" && (p[2].Contains("LowRank", StringComparison.Ordinal)))
            .Select(p => (Target: p[2], Ms: double.Parse(p[0], System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();
        detail = string.Join(", ", rows.Select(r => $"{r.Target} {r.Ms} ms"));
        return rows.Sum(r => r.Ms);
    }
}
