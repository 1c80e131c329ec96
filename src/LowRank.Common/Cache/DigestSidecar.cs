using System.Security.Cryptography;
using System.Text.Json;

namespace LowRank.Cache;

/// <summary>
/// Remembers the SHA-256 of files by (full path, size, last write time), so an unchanged 13 GB model is hashed
/// once, not on every build. One small JSON file per folder digested, kept under <c>.digests/</c> in the cache
/// folder and shared by every project on the machine. A file whose size or time changed is hashed again; the
/// sidecar is rewritten (temp file, then rename) only when something new was hashed, and a torn or stale
/// sidecar only costs a re-hash, never a wrong digest of a file that has changed since.
/// </summary>
public sealed class DigestSidecar
{
    private readonly string path;
    private readonly Dictionary<string, Record> records;
    private bool dirty;

    private DigestSidecar(string path, Dictionary<string, Record> records)
    {
        this.path = path;
        this.records = records;
    }

    /// <summary>Files hashed through this sidecar since it was opened (not found in it).</summary>
    public int HashedCount { get; private set; }

    /// <summary>The sidecar for <paramref name="folder"/> under <paramref name="sidecarRoot"/> (default: <see cref="LowRankPaths.ModelCache"/>/.digests).</summary>
    public static DigestSidecar Open(string folder, string? sidecarRoot = null)
    {
        var root = sidecarRoot ?? Path.Combine(LowRankPaths.ModelCache, ".digests");
        var name = CanonicalJson.Sha256Hex(Path.GetFullPath(folder))[..24] + ".json";
        var file = Path.Combine(root, name);
        var records = new Dictionary<string, Record>(StringComparer.Ordinal);
        try
        {
            if (File.Exists(file))
            {
                var loaded = JsonSerializer.Deserialize<Dictionary<string, Record>>(File.ReadAllText(file));
                if (loaded is not null) foreach (var (k, v) in loaded) records[k] = v;
            }
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            // A sidecar that cannot be read is only a lost shortcut: hash again.
        }
        return new DigestSidecar(file, records);
    }

    /// <summary>Lower-case hex SHA-256 of the file's content (following symbolic links).</summary>
    public string Sha256(string file)
    {
        var info = new FileInfo(file);
        if (info.LinkTarget is not null && info.ResolveLinkTarget(true) is FileInfo target) info = target;
        if (!info.Exists) throw new LrkException(ErrorCodes.ModelNotFound, $"file not found: {file}");
        var full = Path.GetFullPath(file);
        var ticks = info.LastWriteTimeUtc.Ticks;
        if (records.TryGetValue(full, out var record) && record.Size == info.Length && record.Ticks == ticks) return record.Sha256;
        var hash = HashFile(info.FullName);
        records[full] = new Record(info.Length, ticks, hash);
        dirty = true;
        HashedCount++;
        return hash;
    }

    public static string HashFile(string file)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>Writes the sidecar if anything was hashed. Failing to write it is not an error (the next run re-hashes).</summary>
    public void Save()
    {
        if (!dirty) return;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
            File.WriteAllText(temp, JsonSerializer.Serialize(records));
            File.Move(temp, path, overwrite: true);
            dirty = false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    public sealed record Record(long Size, long Ticks, string Sha256);
}
