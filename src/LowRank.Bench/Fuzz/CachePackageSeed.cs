using System.IO.Compression;
using System.Text;
using LowRank.Cache;

namespace LowRank.Bench.Fuzz;

/// <summary>
/// A well-formed remote cache entry package, made once per run through the real cache (commit, record) and
/// zipped as the remote cache push lays it out: NuGet's parts at the root, the entry's files and its record under
/// <c>entry/</c>. Held as named parts so a mutation can change any of them and zip again.
/// </summary>
public sealed class CachePackageSeed
{
    private CachePackageSeed(CacheEntry entry, IReadOnlyList<(string Name, byte[] Bytes)> parts)
    {
        Entry = entry;
        Parts = parts;
    }

    public CacheEntry Entry { get; }
    public IReadOnlyList<(string Name, byte[] Bytes)> Parts { get; }

    public string Id => CachePackage.IdPrefix + Entry.Key;

    public static CachePackageSeed Create(string folder, string sourceModel, int seed)
    {
        var cache = new ModelCache(Path.Combine(folder, "seed-cache"));
        var key = CacheKey.Create("svd", 0.5, "sha256:" + Convert.ToHexStringLower(BitConverter.GetBytes(seed)).PadRight(64, '0'), null, null, null, null, null, "fuzz");
        CacheEntry entry;
        using (var held = cache.Lock(key.Hash, TimeSpan.FromSeconds(30), CancellationToken.None))
        {
            entry = cache.TryGet(key.Hash) ?? Commit(cache, held, key, sourceModel, seed);
        }
        var id = CachePackage.IdPrefix + key.Hash;
        var parts = new List<(string, byte[])>
        {
            ("_rels/.rels", Encoding.UTF8.GetBytes("""<?xml version="1.0" encoding="utf-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships" />""")),
            ($"{id}.nuspec", Encoding.UTF8.GetBytes($"""<?xml version="1.0" encoding="utf-8"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"><metadata><id>{id}</id><version>1.0.0</version><authors>LowRank.Build</authors><description>fuzz seed</description><packageTypes><packageType name="LowRankCacheEntry" version="1.0" /></packageTypes></metadata></package>""")),
            ("[Content_Types].xml", Encoding.UTF8.GetBytes("""<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="json" ContentType="application/octet" /></Types>""")),
        };
        foreach (var file in entry.Record.Files) parts.Add(($"entry/{file.Path}", File.ReadAllBytes(entry.FilePath(file))));
        parts.Add(("entry/entry.json", File.ReadAllBytes(Path.Combine(entry.Folder, CacheEntry.RecordFileName))));
        return new CachePackageSeed(entry, parts);
    }

    private static CacheEntry Commit(ModelCache cache, CacheLock held, CacheKey key, string sourceModel, int seed)
    {
        var temp = cache.PrepareTemp(held, key.Hash);
        Directory.CreateDirectory(Path.Combine(temp, "sub"));
        File.Copy(Path.Combine(sourceModel, "config.json"), Path.Combine(temp, "config.json"));
        var weights = new byte[64 * 1024];
        new Random(seed).NextBytes(weights);
        File.WriteAllBytes(Path.Combine(temp, "model.safetensors"), weights);
        File.WriteAllText(Path.Combine(temp, "sub", "notes.txt"), "a nested file");
        return cache.Commit(held, key, temp);
    }

    public static byte[] Zip(IEnumerable<(string Name, byte[] Bytes)> parts)
    {
        using var memory = new MemoryStream();
        using (var zip = new ZipArchive(memory, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, bytes) in parts)
            {
                using var stream = zip.CreateEntry(name, CompressionLevel.Fastest).Open();
                stream.Write(bytes);
            }
        }
        return memory.ToArray();
    }
}
