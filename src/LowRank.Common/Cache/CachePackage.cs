using System.IO.Compression;
using System.Xml;
using System.Xml.Linq;

namespace LowRank.Cache;

/// <summary>
/// Reads a cache entry package (a remote cache's <c>LowRank.Cache.&lt;key&gt;.1.0.0.nupkg</c>, or a file given to
/// <c>cache import</c>): the layout (<see cref="CachePackageLayout"/>), the .nuspec's id, the record
/// <c>entry/entry.json</c> (a usable record whose key fields hash to its key, the expected key when one is given),
/// and exactly the recorded files, unpacked into a folder. Sizes and SHA-256s are checked afterwards, by
/// <see cref="ModelCache.Commit"/> with the record's files as the expected ones. LRK5003 when it is not an entry
/// package, LRK5002 when it holds other files than its record lists.
/// </summary>
public static class CachePackage
{
    public const string IdPrefix = "LowRank.Cache.";
    private const string RecordPath = CachePackageLayout.EntryFolder + "/" + CacheEntry.RecordFileName;

    /// <summary>
    /// Checks the package and unpacks its entry into <paramref name="folder"/> (which must not exist; null: check
    /// only, unpack nothing); returns its record and key.
    /// </summary>
    public static (CacheEntryRecord Record, CacheKey Key) Extract(string nupkg, CacheKey? expected, string? folder, string describe)
    {
        using var zip = CachePackageLayout.Open(nupkg, describe);
        try
        {
            var record = ReadRecord(zip, describe);
            var key = CacheKey.Parse(CanonicalJson.Serialize(record.KeyFields));
            if (key.Hash != record.Key)
                throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe}: its {RecordPath} names key {Short(record.Key)} but its key fields hash to {Short(key.Hash)}");
            if (expected is not null && (record.Key != expected.Hash || key.CanonicalText != expected.CanonicalText))
                throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe}: its {RecordPath} is for another key ({Short(record.Key)}), not {Short(expected.Hash)}");
            CheckId(zip, record.Key, describe);

            var prefix = CachePackageLayout.EntryFolder + "/";
            var packaged = zip.Entries.Where(e => e.FullName.StartsWith(prefix, StringComparison.Ordinal) && e.FullName != RecordPath)
                .ToDictionary(e => e.FullName[prefix.Length..], StringComparer.Ordinal);
            var listed = record.Files.Select(f => f.Path).ToHashSet(StringComparer.Ordinal);
            if (packaged.Keys.Where(p => !listed.Contains(p)).Order(StringComparer.Ordinal).ToList() is { Count: > 0 } unlisted)
                throw new LrkException(ErrorCodes.HashMismatch, $"{describe} holds files its entry.json does not list: {string.Join(", ", unlisted)}");
            foreach (var file in record.Files.Where(f => !packaged.ContainsKey(f.Path)))
                throw new LrkException(ErrorCodes.HashMismatch, $"{describe} was rejected and nothing was installed: {file.Path} is listed in its entry.json but not in the package");
            if (folder is null) return (record, key);
            var root = Path.GetFullPath(folder) + Path.DirectorySeparatorChar;
            Directory.CreateDirectory(folder);
            foreach (var file in record.Files)
            {
                if (!packaged.TryGetValue(file.Path, out var part))
                    throw new LrkException(ErrorCodes.HashMismatch, $"{describe} was rejected and nothing was installed: {file.Path} is listed in its entry.json but not in the package");
                var target = Path.GetFullPath(Path.Combine(folder, file.Path));
                if (!target.StartsWith(root, StringComparison.Ordinal))
                    throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe}: entry.json names a file outside the entry: {file.Path}");
                if (part.Length != file.Size)
                    throw new LrkException(ErrorCodes.HashMismatch, $"{describe} was rejected and nothing was installed: {file.Path} is {part.Length} bytes, its entry.json says {file.Size}");
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                using var from = part.Open();
                using var to = new FileStream(target, FileMode.CreateNew, FileAccess.Write);
                CopyAtMost(from, to, file.Size, describe, file.Path);
            }
            return (record, key);
        }
        catch (InvalidDataException e)
        {
            throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe} is damaged ({e.Message})");
        }
    }

    /// <summary>Copies at most the recorded size (a zip's stated sizes can lie; a part that inflates past it is not the recorded file).</summary>
    private static void CopyAtMost(Stream from, Stream to, long size, string describe, string path)
    {
        var buffer = new byte[81920];
        long total = 0;
        int read;
        while ((read = from.Read(buffer, 0, buffer.Length)) > 0)
        {
            total += read;
            if (total > size) throw new LrkException(ErrorCodes.HashMismatch, $"{describe} was rejected and nothing was installed: {path} inflates past its recorded {size} bytes");
            to.Write(buffer, 0, read);
        }
    }

    private static CacheEntryRecord ReadRecord(ZipArchive zip, string describe)
    {
        var part = zip.GetEntry(RecordPath) ?? throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe} has no {RecordPath}: it is not a LowRank cache entry");
        if (part.Length > 64 << 20) throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe}: its {RecordPath} is {part.Length} bytes, not an entry record");
        string text;
        using (var reader = new StreamReader(part.Open(), new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true)))
        {
            try { text = reader.ReadToEnd(); }
            catch (System.Text.DecoderFallbackException) { throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe}: its {RecordPath} is not UTF-8"); }
        }
        var record = ModelCache.TryParseRecord(text) ?? throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe}: {RecordPath} is not an entry record");
        if (ModelCache.RecordProblems(record) is { Count: > 0 } problems)
            throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe}: its {RecordPath} {string.Join("; ", problems)}");
        return record;
    }

    private static void CheckId(ZipArchive zip, string key, string describe)
    {
        var nuspec = zip.Entries.Where(e => !e.FullName.Contains('/', StringComparison.Ordinal) && e.FullName.EndsWith(".nuspec", StringComparison.OrdinalIgnoreCase)).ToList();
        if (nuspec.Count != 1) throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe} has {nuspec.Count} .nuspec files, not one");
        string? id;
        try
        {
            using var stream = nuspec[0].Open();
            using var reader = XmlReader.Create(stream, new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null, MaxCharactersInDocument = 1 << 20 });
            id = XDocument.Load(reader).Root?.Elements().FirstOrDefault(e => e.Name.LocalName == "metadata")?.Elements().FirstOrDefault(e => e.Name.LocalName == "id")?.Value;
        }
        catch (XmlException e)
        {
            throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe}: its .nuspec is not XML ({e.Message})");
        }
        if (!string.Equals(id?.Trim(), IdPrefix + key, StringComparison.OrdinalIgnoreCase))
            throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe} says it is '{id}', not {IdPrefix}{key}");
    }

    private static string Short(string key) => key.Length > 12 ? key[..12] + "…" : key;
}
