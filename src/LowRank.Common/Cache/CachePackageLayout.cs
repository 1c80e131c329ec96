using System.IO.Compression;

namespace LowRank.Cache;

/// <summary>
/// The zip layout a remote cache package (<c>LowRank.Cache.&lt;key&gt;.1.0.0.nupkg</c>) must have before anything in
/// it is read: NuGet's own parts at the root (<c>[Content_Types].xml</c>, <c>_rels/.rels</c>, the <c>.nuspec</c>,
/// <c>package/services/metadata/…</c>, a signature) and everything else under <c>entry/</c>, spelled exactly so,
/// each name a plain relative path, no name twice (ordinally or differing only in case). A file that is not a zip,
/// is empty or truncated, or breaks the layout is LRK5003 ("not an entry"); nothing is extracted from it.
/// </summary>
public static class CachePackageLayout
{
    public const string EntryFolder = "entry";

    /// <summary>Opens the package and checks its layout; the caller disposes the archive. LRK5003 when it is not an entry package.</summary>
    public static ZipArchive Open(string nupkg, string describe)
    {
        ZipArchive? zip = null;
        try
        {
            if (new FileInfo(nupkg).Length == 0) throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe} is empty (0 bytes): it is not a LowRank cache entry");
            zip = ZipFile.OpenRead(nupkg);
            if (Problems(zip.Entries.Select(e => e.FullName).ToList()) is { Count: > 0 } problems)
                throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe} is not a LowRank cache entry: {string.Join("; ", problems)}");
            return zip;
        }
        catch (Exception e) when (e is InvalidDataException or IOException and not FileNotFoundException and not DirectoryNotFoundException)
        {
            zip?.Dispose();
            throw new LrkException(ErrorCodes.CacheCorrupt, $"{describe} is damaged: not a readable zip ({e.Message})");
        }
        catch
        {
            zip?.Dispose();
            throw;
        }
    }

    /// <summary>What is wrong with a package's list of zip entry names, one line each (none = a valid layout).</summary>
    public static IReadOnlyList<string> Problems(IReadOnlyList<string> names)
    {
        var problems = new List<string>();
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in names)
        {
            if (!seen.Add(name)) problems.Add($"'{name}' is in the zip twice");
            if (name.Length == 0 || name.Contains('\\', StringComparison.Ordinal) || name.StartsWith('/') || name.Split('/').Any(p => p is "." or ".."))
            {
                problems.Add($"'{name}' is not a plain relative path");
                continue;
            }
            if (name.StartsWith(EntryFolder + "/", StringComparison.Ordinal))
            {
                if (name.EndsWith('/') || name.Split('/').Any(p => p.Length == 0)) problems.Add($"'{name}' is not a file path");
                continue;
            }
            if (name.StartsWith(EntryFolder + "/", StringComparison.OrdinalIgnoreCase)) problems.Add($"'{name}' is not under '{EntryFolder}/' (case differs)");
            else if (!IsNuGetPart(name)) problems.Add($"'{name}' is outside '{EntryFolder}/'");
        }
        return problems;
    }

    private static bool IsNuGetPart(string name) =>
        name is "[Content_Types].xml" or "_rels/.rels" or ".signature.p7s"
        || (name.EndsWith(".nuspec", StringComparison.OrdinalIgnoreCase) && !name.Contains('/', StringComparison.Ordinal))
        || (name.StartsWith("package/services/metadata/core-properties/", StringComparison.Ordinal) && name.EndsWith(".psmdcp", StringComparison.Ordinal));
}
