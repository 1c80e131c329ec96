using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LowRank.Cache;

/// <summary>One file of a cache entry as recorded in its <c>entry.json</c>.</summary>
public sealed record CacheFile(string Path, long Size, string Sha256);

/// <summary>
/// The key record of a cache entry, <c>&lt;cache&gt;/&lt;key&gt;/entry.json</c>. It is written last, after every
/// file of the entry is in place, so its presence is what makes an entry exist (NuGet's .nupkg.metadata marker).
/// </summary>
public sealed record CacheEntryRecord
{
    public int Format { get; init; } = 1;
    public required string Key { get; init; }
    /// <summary>The key's fields (method, ratio, digests, tool version, …), exactly the object that was hashed.</summary>
    public required JsonObject KeyFields { get; init; }
    public required DateTime CreatedUtc { get; init; }
    public required List<CacheFile> Files { get; init; }
    public long TotalBytes { get; init; }
}

/// <summary>A committed entry: its folder and record.</summary>
public sealed record CacheEntry(string Folder, CacheEntryRecord Record)
{
    public const string RecordFileName = "entry.json";

    public string Key => Record.Key;

    /// <summary>When a build last used this entry (the record file's write time, touched on use; at most hourly).</summary>
    [JsonIgnore]
    public DateTime LastUsedUtc => File.GetLastWriteTimeUtc(System.IO.Path.Combine(Folder, RecordFileName));

    /// <summary>
    /// "used 2026-12-07 12:00" (UTC), or "never used" when the record was not touched after it was written (builds
    /// touch it at most hourly, so a use within the first hour does not count) or its time cannot be read.
    /// </summary>
    public static string DescribeUse(DateTime lastUsedUtc, DateTime createdUtc) =>
        lastUsedUtc.Year < 1700 || lastUsedUtc - createdUtc < TimeSpan.FromMinutes(1)
            ? "never used"
            : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"used {lastUsedUtc:yyyy-MM-dd HH:mm}");

    public string FilePath(CacheFile file) => System.IO.Path.Combine(Folder, file.Path.Replace('/', System.IO.Path.DirectorySeparatorChar));
}
