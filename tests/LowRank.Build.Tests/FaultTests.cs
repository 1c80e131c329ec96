using System.Diagnostics;
using System.Security.Cryptography;
using LowRank.Cache;

namespace LowRank.Build.Tests;

/// <summary>
/// Issue 17's fault tests, on the real tool and real builds: SIGKILL of the whole process tree at seeded points of
/// `compress` and of a `dotnet build` that compresses, then concurrent builds of one key with `cache prune` running
/// in a loop beside them. After each: `cache verify` is clean, the compressor's output is either absent or
/// complete, no orphan is left once the key's next writer has run, and the source model is byte-for-byte the same.
/// </summary>
[Collection(PackedFeedTests.Name)]
public class FaultTests(PackedFeed feed, ITestOutputHelper output)
{
    private const int Seed = 1717;

    private static string Item(string source, string ratio) =>
        $"""    <CompressedModel Include="{source}" Method="svd" Ratio="{ratio}" OutputName="Moby" Device="cpu" />""";

    [RequiresCompressFact]
    public void Kills_at_seeded_points_and_builds_racing_prune_leave_a_clean_cache_no_orphans_and_the_source_intact()
    {
        using var fixture = new FixtureProject(feed, "faults");
        var source = fixture.PathOf("source");
        Directory.CreateDirectory(source);
        foreach (var file in Directory.EnumerateFiles(TestModels.SourceModel!)) File.Copy(file, Path.Combine(source, Path.GetFileName(file)));
        var sourceHash = TreeHash(source);
        var random = new Random(Seed);
        var cache = new ModelCache(fixture.Cache);
        var clock = Stopwatch.StartNew();

        // 1. The tool alone: SIGKILL after a seeded number of its progress lines (+ a seeded delay). The output folder
        //    is published by one rename, so it is absent or complete (verify passes), never half there.
        for (var round = 0; round < 2; round++)
        {
            // Round 0: a seeded line of the run; round 1: a seeded moment of the write/digest stage (where a kill
            // leaves the hidden staging folder behind).
            var after = random.Next(0, 6);
            var delay = random.Next(0, round == 0 ? 300 : 150);
            var outFolder = fixture.PathOf($"out-{round}");
            var lines = 0;
            var fired = 0;
            var run = Dotnet.Run(fixture.Root, fixture.Environment,
                ["exec", feed.PackagedTool, "compress", source, "--method", "svd", "--ratio", "0.5", "-o", outFolder, "--device", "cpu", "--progress", "jsonl", "--no-config"],
                (line, process) =>
                {
                    var hit = round == 0 ? Interlocked.Increment(ref lines) == after + 1 : line.Contains("\"stage\":\"write\"", StringComparison.Ordinal) || line.Contains("\"stage\":\"digest\"", StringComparison.Ordinal);
                    if (hit && Interlocked.Exchange(ref fired, 1) == 0) KillLater(process, delay);
                }, TimeSpan.FromMinutes(5));
            output.WriteLine($"tool kill {round}: {(round == 0 ? $"after line {after}" : "at write/digest")} + {delay} ms -> exit {run.ExitCode}, output {(Directory.Exists(outFolder) ? "present" : "absent")}");
            if (Directory.Exists(outFolder))
                Dotnet.Run(fixture.Root, fixture.Environment, "exec", feed.PackagedTool, "verify", outFolder, "--no-config").ShouldSucceed();
            Assert.Equal(sourceHash, TreeHash(source));
        }

        // 2. A build that compresses, SIGKILLed (the whole tree: MSBuild, its nodes, the tool) at seeded points after
        //    "LowRank: compressing". Then `cache verify` is clean; the next build compresses and leaves no orphan.
        fixture.WriteApp("app", Item(source, "0.5"));
        fixture.Run("app", "restore", "-nologo").ShouldSucceed();
        for (var round = 0; round < 2; round++)
        {
            var after = random.Next(0, 10);
            var delay = random.Next(0, round == 0 ? 500 : 150);
            var seen = -1;
            var fired = 0;
            var killed = Dotnet.Run(fixture.PathOf("app"), fixture.Environment, ["build", "-nologo", "--no-restore", "-v:n"], (line, process) =>
            {
                if (line.Contains("LowRank: compressing", StringComparison.Ordinal)) Interlocked.Exchange(ref seen, 0);
                var hit = round == 0
                    ? Volatile.Read(ref seen) >= 0 && Interlocked.Increment(ref seen) == after + 1
                    : line.Contains("LowRank: [write", StringComparison.Ordinal) || line.Contains("LowRank: [digest", StringComparison.Ordinal);
                if (hit && Interlocked.Exchange(ref fired, 1) == 0) KillLater(process, delay);
            }, TimeSpan.FromMinutes(5));
            output.WriteLine($"build kill {round}: {(round == 0 ? $"after line {after}" : "at write/digest")} + {delay} ms -> exit {killed.ExitCode}; entries {cache.List().Count}, temp {string.Join(", ", TempEntries(cache).Select(Path.GetFileName))}");
            VerifyClean(fixture, cache);
            Assert.Equal(sourceHash, TreeHash(source));
        }
        var next = fixture.Run("app", "build", "-nologo", "--no-restore").ShouldSucceed();
        Assert.Empty(TempEntries(cache)); // the key's next writer (or the hit) left nothing under .tmp/
        Assert.DoesNotContain(cache.List(), e => !Directory.Exists(e.Folder));
        VerifyClean(fixture, cache);

        // 3. Two builds of one new key at once, with `cache prune --max-size 0B --older-than 0d` in a loop beside
        //    them: one compresses, the other waits and uses the entry, neither loses its files to the prune.
        fixture.WriteApp("one", Item(source, "0.4"));
        fixture.WriteApp("two", Item(source, "0.4"));
        fixture.Run("one", "restore", "-nologo").ShouldSucceed();
        fixture.Run("two", "restore", "-nologo").ShouldSucceed();
        var results = new ProcessResult[2];
        var builds = new[] { "one", "two" }.Select((folder, i) => new Thread(() => results[i] = fixture.Run(folder, "build", "-nologo", "--no-restore"))).ToList();
        builds.ForEach(t => t.Start());
        var prunes = 0;
        while (builds.Any(t => t.IsAlive))
        {
            Dotnet.Run(fixture.Root, fixture.Environment, "exec", feed.PackagedTool, "cache", "prune", "--max-size", "0B", "--older-than", "0d", "--no-config").ShouldSucceed();
            prunes++;
        }
        builds.ForEach(t => t.Join());
        foreach (var r in results) r.ShouldSucceed();
        output.WriteLine($"race: {prunes} prunes beside two builds; total {clock.Elapsed.TotalSeconds:F0} s");
        Assert.Equal(1, results.Sum(r => r.Output.Split("LowRank: compressing").Length - 1));
        foreach (var app in new[] { "one", "two" })
            Assert.True(File.Exists(fixture.PathOf(app, "bin", "Debug", "net10.0", "models", "Moby", "model.safetensors")), app);
        VerifyClean(fixture, cache);
        Assert.Empty(TempEntries(cache));
        Assert.Equal(sourceHash, TreeHash(source));
    }

    private static void KillLater(Process process, int milliseconds) =>
        ThreadPool.QueueUserWorkItem(_ =>
        {
            Thread.Sleep(milliseconds);
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        });

    /// <summary>`cache verify` (the tool, exit 0) and the same check in-process, entry by entry.</summary>
    private void VerifyClean(FixtureProject fixture, ModelCache cache)
    {
        Dotnet.Run(fixture.Root, fixture.Environment, "exec", feed.PackagedTool, "cache", "verify", "--no-config").ShouldSucceed();
        foreach (var entry in cache.List()) Assert.Empty(ModelCache.Verify(entry));
    }

    private static List<string> TempEntries(ModelCache cache) =>
        Directory.Exists(cache.TempFolder) ? Directory.EnumerateFileSystemEntries(cache.TempFolder).ToList() : [];

    private static string TreeHash(string folder)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetRelativePath(folder, file) + "\n"));
            sha.AppendData(File.ReadAllBytes(file));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
