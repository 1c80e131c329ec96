using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using LowRank.Cache;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank cache list|verify|prune</c>: look after the content-addressed cache the MSBuild task fills.</summary>
public static partial class CacheCommand
{
    public static Command Create()
    {
        var command = new Command("cache", "List, verify and prune the compressed-model cache (LOWRANK_CACHE, else ~/.cache/lowrank/models).");
        command.Subcommands.Add(List());
        command.Subcommands.Add(Verify());
        command.Subcommands.Add(Prune());
        command.Subcommands.Add(Import());
        return command;
    }

    private static Option<string?> CacheOption() => new("--cache") { Description = "Cache folder (overrides LOWRANK_CACHE)" };

    private static ModelCache Open(ParseResult parse, Option<string?> option) =>
        parse.GetValue(option) is { Length: > 0 } folder ? new ModelCache(folder) : ModelCache.Default;

    public sealed record EntrySummary(string Key, string Method, string Ratio, string Source, string Tool, int Files, long Bytes, DateTime CreatedUtc, DateTime LastUsedUtc);

    private static EntrySummary Summarize(CacheEntry e) => new(
        e.Key, e.Record.KeyFields["method"]?.ToString() ?? "?", e.Record.KeyFields["ratio"]?.ToJsonString() ?? "?",
        e.Record.KeyFields["source"]?.ToString() ?? "?", e.Record.KeyFields["tool"]?.ToString() ?? "?",
        e.Record.Files.Count, e.Record.TotalBytes, e.Record.CreatedUtc, e.LastUsedUtc);

    private static Command List()
    {
        var cache = CacheOption();
        var json = CommonOptions.Json();
        var command = new Command("list", "List the entries, least recently used first.") { cache, json };
        command.SetAction((parse, _) =>
        {
            var modelCache = Open(parse, cache);
            var entries = modelCache.List().Select(Summarize).ToList();
            ToolProgress.Result(new { cache = modelCache.Root, entries, totalBytes = entries.Sum(e => e.Bytes) }, parse.GetValue(json), () =>
            {
                Console.WriteLine($"{modelCache.Root}: {entries.Count} entries, {FormatBytes(entries.Sum(e => e.Bytes))}");
                foreach (var e in entries)
                    Console.WriteLine($"{e.Key[..12]}  {e.Method,-10} ratio {e.Ratio,-5} {FormatBytes(e.Bytes),10}  {CacheEntry.DescribeUse(e.LastUsedUtc, e.CreatedUtc),-22}  source {Short(e.Source)}  tool {e.Tool}");
            });
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static Command Verify()
    {
        var cache = CacheOption();
        var json = CommonOptions.Json();
        var keys = new Argument<string[]>("key") { Description = "Entries to verify (a key or a unique prefix); all when omitted", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("verify", "Re-hash entry files against their records; exit code 3 when any entry is damaged.") { keys, cache, json };
        command.SetAction((parse, cancellation) =>
        {
            var modelCache = Open(parse, cache);
            var all = modelCache.List();
            var wanted = parse.GetValue(keys) ?? [];
            var selected = wanted.Length == 0 ? all : wanted.Select(prefix =>
            {
                var matches = all.Where(e => e.Key.StartsWith(prefix, StringComparison.Ordinal)).ToList();
                return matches.Count == 1 ? matches[0] : throw new LrkException(ErrorCodes.BadArgument,
                    matches.Count == 0 ? $"no cache entry starts with '{prefix}'" : $"'{prefix}' matches {matches.Count} entries; give more of the key");
            }).ToList();
            var results = new List<object>();
            var damaged = 0;
            foreach (var entry in selected)
            {
                cancellation.ThrowIfCancellationRequested();
                var problems = ModelCache.Verify(entry);
                if (problems.Count > 0) damaged++;
                results.Add(new { key = entry.Key, ok = problems.Count == 0, problems });
                if (!parse.GetValue(json) && ToolProgress.Mode != ProgressMode.Jsonl)
                    Console.WriteLine(problems.Count == 0 ? $"{entry.Key[..12]}  ok ({entry.Record.Files.Count} files, {FormatBytes(entry.Record.TotalBytes)})"
                        : $"{entry.Key[..12]}  DAMAGED: {string.Join("; ", problems)}");
            }
            ToolProgress.Result(new { cache = modelCache.Root, verified = selected.Count, damaged, entries = results }, parse.GetValue(json),
                () => Console.WriteLine($"{selected.Count} verified, {damaged} damaged"));
            return Task.FromResult(damaged == 0 ? ExitCodes.Success : ExitCodes.CheckFailed);
        });
        return command;
    }

    private static Command Prune()
    {
        var cache = CacheOption();
        var json = CommonOptions.Json();
        var olderThan = new Option<string?>("--older-than") { Description = "Delete entries not used for this long: 30d, 12h, 90m" };
        var maxSize = new Option<string?>("--max-size") { Description = "Then delete least recently used entries until the cache is at most this big: 20GB, 500MB" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Say what would be deleted, delete nothing" };
        var command = new Command("prune", "Delete old or least recently used entries; entries a build holds locked are never deleted.") { olderThan, maxSize, dryRun, cache, json };
        command.SetAction((parse, _) =>
        {
            var age = parse.GetValue(olderThan) is { } a ? ParseAge(a) : (TimeSpan?)null;
            var size = parse.GetValue(maxSize) is { } s ? ParseSize(s) : (long?)null;
            if (age is null && size is null) throw new LrkException(ErrorCodes.BadArgument, "say what to prune: --older-than and/or --max-size");
            var modelCache = Open(parse, cache);
            var outcomes = modelCache.Prune(age, size, parse.GetValue(dryRun));
            var freed = outcomes.Where(o => o.Action is "deleted" or "would delete").Sum(o => o.Bytes);
            ToolProgress.Result(new { cache = modelCache.Root, freedBytes = freed, entries = outcomes }, parse.GetValue(json), () =>
            {
                foreach (var o in outcomes) Console.WriteLine($"{o.Key[..12]}  {FormatBytes(o.Bytes),10}  {o.Usage,-22}  {o.Action}");
                Console.WriteLine($"{(parse.GetValue(dryRun) ? "would free" : "freed")} {FormatBytes(freed)}");
            });
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    /// <summary>
    /// Installs an entry package (what a remote cache holds, e.g. copied from a CI feed to an offline machine) with
    /// the checks a build's fetch makes: layout, id, record, key, exactly the recorded files with their sizes and
    /// SHA-256s, committed under the key's lock through .tmp/. An entry already there is left alone.
    /// </summary>
    private static Command Import()
    {
        var cache = CacheOption();
        var json = CommonOptions.Json();
        var package = new Argument<string>("package") { Description = "A LowRank.Cache.<key>.1.0.0.nupkg" };
        var command = new Command("import", "Install a remote cache entry package (.nupkg) into the cache, checking every file against its record.") { package, cache, json };
        command.SetAction((parse, cancellation) =>
        {
            var modelCache = Open(parse, cache);
            var nupkg = Path.GetFullPath(parse.GetValue(package)!);
            if (!File.Exists(nupkg)) throw new LrkException(ErrorCodes.PackageNotFound, $"{nupkg} is not a file");
            var describe = $"package {nupkg}";
            CacheEntry entry;
            bool installed;
            // Check the package and read its record first, unlocked, to learn the key; then extract under the key's lock.
            var (record, key) = CachePackage.Extract(nupkg, null, null, describe);
            using var held = modelCache.Lock(key.Hash, TimeSpan.FromMinutes(10), cancellation);
            if (modelCache.TryGet(key.Hash) is { } existing)
            {
                (entry, installed) = (existing, false);
            }
            else
            {
                var temp = modelCache.PrepareTemp(held, key.Hash);
                try
                {
                    CachePackage.Extract(nupkg, key, temp, describe);
                    entry = modelCache.Commit(held, key, temp, record.Files);
                    installed = true;
                }
                finally
                {
                    ModelCache.DeleteTree(temp);
                }
            }
            ToolProgress.Result(new { cache = modelCache.Root, key = entry.Key, installed, files = entry.Record.Files.Count, bytes = entry.Record.TotalBytes }, parse.GetValue(json),
                () => Console.WriteLine($"{entry.Key[..12]}  {(installed ? "installed" : "already in the cache")} ({entry.Record.Files.Count} files, {FormatBytes(entry.Record.TotalBytes)}) in {modelCache.Root}"));
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    public static TimeSpan ParseAge(string text)
    {
        var m = AgePattern().Match(text.Trim());
        if (!m.Success) throw new LrkException(ErrorCodes.BadArgument, $"--older-than '{text}': use a number and d, h or m (30d, 12h, 90m)");
        var n = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return m.Groups[2].Value switch { "d" => TimeSpan.FromDays(n), "h" => TimeSpan.FromHours(n), _ => TimeSpan.FromMinutes(n) };
    }

    public static long ParseSize(string text) => ByteSize.Parse(text, "--max-size", ErrorCodes.BadArgument);

    private static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F1} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };

    private static string Short(string digest) => digest.Length > 19 ? digest[..19] + "…" : digest;

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)\s*([dhm])$")]
    private static partial Regex AgePattern();

}
