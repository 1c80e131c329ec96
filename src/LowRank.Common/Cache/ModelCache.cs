using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank.Cache;

/// <summary>
/// The content-addressed cache of compressed models: <c>&lt;root&gt;/&lt;key&gt;/</c> holds the files the compressor
/// wrote and <c>entry.json</c> (<see cref="CacheEntryRecord"/>). Writes follow NuGet's package folder protocol:
/// take the key's lock, produce everything in <c>.tmp/</c> on the same volume, rename the folder into place, and
/// write the key record last. A crash at any point leaves either nothing, an orphan under <c>.tmp/</c>, or a folder
/// without a record; none of those is an entry, and the next writer under the lock clears them.
/// Entry files are made read-only, because builds hard-link them into bin/.
/// </summary>
public sealed class ModelCache
{
    private static readonly JsonSerializerOptions RecordJson = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public ModelCache(string root)
    {
        Root = Path.GetFullPath(root);
    }

    public static ModelCache Default => new(LowRankPaths.ModelCache);

    public string Root { get; }
    public string LocksFolder => Path.Combine(Root, ".locks");
    public string TempFolder => Path.Combine(Root, ".tmp");

    public string EntryFolder(string key) => Path.Combine(Root, key);

    /// <summary>
    /// The committed entry for <paramref name="key"/>, or null (absent, or a half-written folder without its record).
    /// A record that cannot describe an entry (a file listed twice, a path outside the folder) is LRK5003.
    /// </summary>
    public CacheEntry? TryGet(string key)
    {
        var entry = Load(key);
        if (entry is not null && RecordProblems(entry.Record) is { Count: > 0 } problems)
            throw new LrkException(ErrorCodes.CacheCorrupt, $"cache entry {entry.Folder} is damaged: its {CacheEntry.RecordFileName} {string.Join("; ", problems)}; run 'dotnet lowrank cache verify' and delete that folder");
        return entry;
    }

    /// <summary>The entry as recorded, without checking the record (for list, verify and prune, which report or delete damaged ones).</summary>
    private CacheEntry? Load(string key)
    {
        var folder = EntryFolder(key);
        var recordPath = Path.Combine(folder, CacheEntry.RecordFileName);
        if (!File.Exists(recordPath)) return null;
        var record = TryParseRecord(File.ReadAllText(recordPath));
        return record is null || record.Key != key ? null : new CacheEntry(folder, record);
    }

    /// <summary>
    /// What makes a record unusable, one line each (none = usable): a path listed twice, an empty, rooted or
    /// <c>..</c> path, a backslash, or the record's own name.
    /// </summary>
    public static IReadOnlyList<string> RecordProblems(CacheEntryRecord record)
    {
        var problems = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in record.Files)
        {
            var path = file?.Path;
            if (file is null || string.IsNullOrEmpty(path)) { problems.Add("lists a file without a path"); continue; }
            if (!seen.Add(path)) problems.Add($"lists {path} twice");
            if (path.Contains('\\', StringComparison.Ordinal) || path.StartsWith('/') || Path.IsPathRooted(path) || path.Split('/').Any(p => p is "" or "." or ".."))
                problems.Add($"lists {path}, which is not a plain relative path inside the entry");
            if (path == CacheEntry.RecordFileName) problems.Add($"lists itself ({path})");
            if (file.Size < 0 || file.Sha256 is null || file.Sha256.Length != 64) problems.Add($"lists {path} without a valid size and SHA-256");
        }
        return problems;
    }

    /// <summary>An <c>entry.json</c> as text, or null when it is not one (also for records that travel in packages).</summary>
    public static CacheEntryRecord? TryParseRecord(string json)
    {
        try
        {
            var record = JsonSerializer.Deserialize<CacheEntryRecord>(json, RecordJson);
            return record is { Key: not null, KeyFields: not null, Files: not null } ? record : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public static string SerializeRecord(CacheEntryRecord record) => JsonSerializer.Serialize(record, RecordJson);

    /// <summary>Marks an entry as used now (for pruning by age); at most once an hour so hits stay read-mostly.</summary>
    public static void Touch(CacheEntry entry)
    {
        var recordPath = Path.Combine(entry.Folder, CacheEntry.RecordFileName);
        try
        {
            if (DateTime.UtcNow - File.GetLastWriteTimeUtc(recordPath) > TimeSpan.FromHours(1)) File.SetLastWriteTimeUtc(recordPath, DateTime.UtcNow);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    public CacheLock? TryLock(string key) => CacheLock.TryAcquire(LocksFolder, key);

    public CacheLock Lock(string key, TimeSpan timeout, CancellationToken cancellation, Action? waiting = null) =>
        CacheLock.Acquire(LocksFolder, key, timeout, cancellation, waiting);

    /// <summary>
    /// Under the key's lock: removes what earlier crashed writers of this key left (temp folders, a folder without a
    /// record) and returns a fresh path under <c>.tmp/</c> that does not exist yet, for the compressor's <c>--out</c>.
    /// </summary>
    public string PrepareTemp(CacheLock held, string key)
    {
        RequireHeld(held, key);
        Directory.CreateDirectory(TempFolder);
        // Ours: "<key>.<pid>.<guid>" (the compressor's --out) and "<key>.push.…"; the compressor's own staging folder
        // next to its --out: ".<key>.<pid>.<guid>.lowrank-<pid>-<guid>.tmp". Both are dead once we hold the key's lock.
        foreach (var stale in Directory.EnumerateFileSystemEntries(TempFolder).Where(path => TempOwner(path) == key))
        {
            if (Directory.Exists(stale)) DeleteTree(stale);
            else File.Delete(stale);
        }
        var folder = EntryFolder(key);
        if (Directory.Exists(folder) && !File.Exists(Path.Combine(folder, CacheEntry.RecordFileName))) DeleteTree(folder);
        return Path.Combine(TempFolder, $"{key}.{Environment.ProcessId}.{Guid.NewGuid():N}");
    }

    /// <summary>
    /// Under the key's lock: hashes the files the compressor wrote into <paramref name="tempFolder"/>, makes them
    /// read-only, renames the folder to the entry and writes the key record last. With <paramref name="expected"/>
    /// (files that came from elsewhere, e.g. a remote cache package) the folder must hold exactly those files with
    /// those sizes and SHA-256s, checked in the same pass that hashes them; otherwise nothing is committed (LRK5002).
    /// </summary>
    public CacheEntry Commit(CacheLock held, CacheKey key, string tempFolder, IReadOnlyList<CacheFile>? expected = null)
    {
        RequireHeld(held, key.Hash);
        if (!Directory.Exists(tempFolder) || !Directory.EnumerateFileSystemEntries(tempFolder).Any())
            throw new LrkException(ErrorCodes.CacheCorrupt, $"nothing to commit: {tempFolder} is missing or empty");
        if (File.Exists(Path.Combine(tempFolder, CacheEntry.RecordFileName)))
            throw new LrkException(ErrorCodes.CacheCorrupt, $"the compressor's output must not contain {CacheEntry.RecordFileName}");

        var files = new List<CacheFile>();
        foreach (var file in Directory.EnumerateFiles(tempFolder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var relative = Path.GetRelativePath(tempFolder, file).Replace('\\', '/');
            files.Add(new CacheFile(relative, new FileInfo(file).Length, DigestSidecar.HashFile(file)));
            MakeReadOnly(file);
        }
        if (expected is not null && Differences(expected, files) is { Count: > 0 } problems)
            throw new LrkException(ErrorCodes.HashMismatch, string.Join("; ", problems));
        var record = new CacheEntryRecord
        {
            Key = key.Hash,
            KeyFields = (JsonObject)JsonNode.Parse(key.CanonicalText)!,
            CreatedUtc = DateTime.UtcNow,
            Files = files,
            TotalBytes = files.Sum(f => f.Size),
        };

        var folder = EntryFolder(key.Hash);
        if (Directory.Exists(folder)) DeleteTree(folder); // a record-less leftover (PrepareTemp clears it too)
        Directory.Move(tempFolder, folder);
        var recordPath = Path.Combine(folder, CacheEntry.RecordFileName);
        var recordTemp = recordPath + ".tmp";
        File.WriteAllText(recordTemp, SerializeRecord(record));
        File.Move(recordTemp, recordPath, overwrite: true);
        return new CacheEntry(folder, record);
    }

    /// <summary>Every committed entry, oldest use first.</summary>
    public IReadOnlyList<CacheEntry> List()
    {
        if (!Directory.Exists(Root)) return [];
        return Directory.EnumerateDirectories(Root)
            .Select(Path.GetFileName)
            .Where(name => name is not null && !name.StartsWith('.'))
            .Select(name => Load(name!))
            .OfType<CacheEntry>()
            .OrderBy(e => e.LastUsedUtc)
            .ToList();
    }

    /// <summary>Re-hashes every file of <paramref name="entry"/> against its record; returns the problems (none = intact).</summary>
    public static IReadOnlyList<string> Verify(CacheEntry entry)
    {
        var problems = new List<string>(RecordProblems(entry.Record).Select(p => $"{CacheEntry.RecordFileName} {p}"));
        if (problems.Count > 0) return problems;
        var recomputed = CacheKey.Parse(CanonicalJson.Serialize(entry.Record.KeyFields)).Hash;
        if (recomputed != entry.Key) problems.Add($"key record hashes to {recomputed[..12]}, not to its folder name");
        var listed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in entry.Record.Files)
        {
            listed.Add(file.Path);
            var path = entry.FilePath(file);
            if (!File.Exists(path)) { problems.Add($"{file.Path}: missing"); continue; }
            var size = new FileInfo(path).Length;
            if (size != file.Size) { problems.Add($"{file.Path}: size {size}, recorded {file.Size}"); continue; }
            var hash = DigestSidecar.HashFile(path);
            if (hash != file.Sha256) problems.Add($"{file.Path}: SHA-256 {hash[..12]}…, recorded {file.Sha256[..12]}…");
        }
        foreach (var file in Directory.EnumerateFiles(entry.Folder, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(entry.Folder, file).Replace('\\', '/');
            if (relative != CacheEntry.RecordFileName && !listed.Contains(relative)) problems.Add($"{relative}: not in the record");
        }
        return problems;
    }

    /// <summary>How <paramref name="actual"/> differs from <paramref name="expected"/>, one line per file (none = the same files, sizes and SHA-256s).</summary>
    public static IReadOnlyList<string> Differences(IReadOnlyList<CacheFile> expected, IReadOnlyList<CacheFile> actual)
    {
        var problems = new List<string>();
        var found = actual.ToDictionary(f => f.Path, StringComparer.Ordinal);
        foreach (var file in expected)
        {
            if (!found.Remove(file.Path, out var got)) problems.Add($"{file.Path}: missing");
            else if (got.Size != file.Size) problems.Add($"{file.Path}: size {got.Size}, expected {file.Size}");
            else if (!string.Equals(got.Sha256, file.Sha256, StringComparison.OrdinalIgnoreCase)) problems.Add($"{file.Path}: SHA-256 {got.Sha256[..12]}…, expected {file.Sha256[..Math.Min(12, file.Sha256.Length)]}…");
        }
        problems.AddRange(found.Keys.Order(StringComparer.Ordinal).Select(path => $"{path}: not expected"));
        return problems;
    }

    /// <summary>What <see cref="Prune"/> did (or would do, with dryRun) to one entry.</summary>
    public sealed record PruneOutcome(string Key, long Bytes, DateTime LastUsedUtc, string Action)
    {
        /// <summary>"used 2026-12-07 12:00", or "never used" when no build used the entry after the one that made it.</summary>
        public string Usage => CacheEntry.DescribeUse(LastUsedUtc, CreatedUtc);
        public DateTime CreatedUtc { get; init; }
    }

    /// <summary>
    /// Deletes entries last used before now − <paramref name="olderThan"/>, then the least recently used ones until
    /// the cache holds at most <paramref name="maxTotalBytes"/>. An entry whose lock another process holds is in use
    /// and is never deleted, and so is one a build is using (its shared use lock, held from finding the entry until
    /// its files are linked into bin/). Also removes temp folders and record-less folders nobody is writing.
    /// </summary>
    public IReadOnlyList<PruneOutcome> Prune(TimeSpan? olderThan, long? maxTotalBytes, bool dryRun = false)
    {
        var outcomes = new List<PruneOutcome>();
        var entries = List();
        var total = entries.Sum(e => e.Record.TotalBytes);
        var now = DateTime.UtcNow;
        foreach (var entry in entries)
        {
            var lastUsed = entry.LastUsedUtc; // read before the record is deleted (afterwards the file time is 1601-01-01)
            var tooOld = olderThan is { } age && now - lastUsed > age;
            var tooBig = maxTotalBytes is { } max && total > max;
            if (!tooOld && !tooBig)
            {
                outcomes.Add(new PruneOutcome(entry.Key, entry.Record.TotalBytes, lastUsed, "kept") { CreatedUtc = entry.Record.CreatedUtc });
                continue;
            }
            using var held = TryLock(entry.Key);
            using var unused = held is null ? null : CacheLock.TryAcquireUse(LocksFolder, entry.Key, exclusive: true);
            if (held is null || unused is null)
            {
                outcomes.Add(new PruneOutcome(entry.Key, entry.Record.TotalBytes, lastUsed, held is null ? "kept (locked)" : "kept (in use by a build)") { CreatedUtc = entry.Record.CreatedUtc });
                continue;
            }
            if (!dryRun) DeleteEntry(entry);
            total -= entry.Record.TotalBytes;
            outcomes.Add(new PruneOutcome(entry.Key, entry.Record.TotalBytes, lastUsed, dryRun ? "would delete" : "deleted") { CreatedUtc = entry.Record.CreatedUtc });
        }
        if (!dryRun) RemoveOrphans();
        return outcomes;
    }

    private void RemoveOrphans()
    {
        if (!Directory.Exists(Root)) return; // no cache yet: nothing to prune
        if (Directory.Exists(TempFolder))
        {
            foreach (var temp in Directory.EnumerateFileSystemEntries(TempFolder))
            {
                if (TempOwner(temp) is not { } key) continue;
                using var held = TryLock(key);
                if (held is null) continue;
                if (Directory.Exists(temp)) DeleteTree(temp);
                else File.Delete(temp);
            }
        }
        foreach (var folder in Directory.EnumerateDirectories(Root))
        {
            var name = Path.GetFileName(folder);
            if (name.StartsWith('.') || File.Exists(Path.Combine(folder, CacheEntry.RecordFileName))) continue;
            using var held = TryLock(name);
            if (held is not null) DeleteTree(folder);
        }
    }

    /// <summary>
    /// Uses an entry: holds its shared use lock (so <c>cache prune</c> leaves it alone) and returns it, or null when
    /// there is none. Dispose the lock when its files are no longer needed (a build: at its end).
    /// </summary>
    public (CacheEntry? Entry, CacheLock Use) Use(string key, TimeSpan timeout, CancellationToken cancellation)
    {
        var use = CacheLock.AcquireUse(LocksFolder, key, timeout, cancellation);
        try
        {
            return (TryGet(key), use);
        }
        catch
        {
            use.Dispose();
            throw;
        }
    }

    /// <summary>The key a temp folder under <c>.tmp/</c> belongs to (its name up to the first dot, leading dots skipped), or null.</summary>
    private static string? TempOwner(string path)
    {
        var name = Path.GetFileName(path).TrimStart('.');
        var dot = name.IndexOf('.', StringComparison.Ordinal);
        var key = dot < 0 ? name : name[..dot];
        return key.Length == 64 && key.All(char.IsAsciiHexDigitLower) ? key : null;
    }

    /// <summary>Deletes the record first, so a delete that stops half-way leaves a folder that is no longer an entry.</summary>
    private static void DeleteEntry(CacheEntry entry)
    {
        File.Delete(Path.Combine(entry.Folder, CacheEntry.RecordFileName));
        DeleteTree(entry.Folder);
    }

    public static void DeleteTree(string folder)
    {
        if (!Directory.Exists(folder)) return;
        if (!OperatingSystem.IsWindows())
        {
            Directory.Delete(folder, recursive: true); // unlinking read-only files needs only a writable folder
            return;
        }
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)) File.SetAttributes(file, FileAttributes.Normal);
        Directory.Delete(folder, recursive: true);
    }

    private static void MakeReadOnly(string file)
    {
        if (OperatingSystem.IsWindows()) File.SetAttributes(file, File.GetAttributes(file) | FileAttributes.ReadOnly);
        else File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }

    private static void RequireHeld(CacheLock held, string key)
    {
        if (held.Key != key) throw new LrkException(ErrorCodes.Internal, $"the lock held is for {held.Key[..12]}, not {key[..12]}");
    }
}
