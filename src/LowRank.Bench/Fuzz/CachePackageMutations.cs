// CA1861: the inline tables of hostile values are the point of these files; one allocation per fuzz case is nothing next to a process start.
#pragma warning disable CA1861
using System.Text;
using System.Text.Json.Nodes;
using LowRank.Cache;

namespace LowRank.Bench.Fuzz;

/// <summary>
/// Mutations of a remote cache entry package, installed with <c>cache import</c> into the case's own cache. An
/// import that succeeds must have installed exactly the seed's files (else the case is a silent wrong result).
/// </summary>
public static class CachePackageMutations
{
    public static FuzzCase Case(FuzzContext c, int index)
    {
        var seed = c.Package;
        var parts = seed.Parts.Select(p => (p.Name, Bytes: p.Bytes.ToArray())).ToList();
        var record = JsonNode.Parse(parts.Single(p => p.Name == "entry/entry.json").Bytes)!.AsObject();
        void SetRecord() => parts[parts.FindIndex(p => p.Name == "entry/entry.json")] = ("entry/entry.json", Encoding.UTF8.GetBytes(record.ToJsonString()));
        var fileParts = parts.Where(p => p.Name.StartsWith("entry/", StringComparison.Ordinal) && p.Name != "entry/entry.json").Select(p => p.Name).ToList();
        var victim = c.Pick(fileParts);
        byte[]? raw = null;
        string mutation;
        switch (c.Random.Next(22))
        {
            case 0: mutation = "control"; break;
            case 1: raw = CachePackageSeed.Zip(parts)[..c.Random.Next(1, 2000)]; mutation = "truncated"; break;
            case 2: raw = []; mutation = "empty"; break;
            case 3: raw = Encoding.UTF8.GetBytes("<html><body>404 Not Found</body></html>"); mutation = "not-a-zip"; break;
            case 4:
                raw = CachePackageSeed.Zip(parts);
                for (var i = 0; i < c.Random.Next(1, 5); i++) raw[c.Random.Next(raw.Length)] ^= (byte)c.Random.Next(1, 256);
                mutation = "byte-flip";
                break;
            case 5: parts.Add((c.Pick(new[] { "extra.bin", "tools/install.ps1", "lib/net10.0/evil.dll" }), "x"u8.ToArray())); mutation = "file-outside-entry"; break;
            case 6: parts.Add((c.Pick(new[] { "../x", "entry/../../x", "/abs", "entry/./a", "entry\\win" }), "x"u8.ToArray())); mutation = "path-traversal"; break;
            case 7: parts.Add((victim.Replace("entry/", c.Pick(new[] { "ENTRY/", "Entry/" }), StringComparison.Ordinal), "x"u8.ToArray())); mutation = "entry-case-variant"; break;
            case 8: parts.Add((victim, c.Chance(0.5) ? "x"u8.ToArray() : parts.First(p => p.Name == victim).Bytes)); mutation = "duplicate-part"; break;
            case 9: parts.RemoveAll(p => p.Name == "entry/entry.json"); mutation = "record-missing"; break;
            case 10: parts[parts.FindIndex(p => p.Name == "entry/entry.json")] = ("entry/entry.json", c.Pick(new[] { "{", "null", "[]", "{\"key\":5}", "\uFEFF{}" }).Select(ch => (byte)ch).ToArray()); mutation = "record-not-a-record"; break;
            case 11: record["key"] = new string('a', 64); SetRecord(); mutation = "record-key"; break;
            case 12: record["keyFields"]!["ratio"] = 0.25; SetRecord(); mutation = "record-key-fields"; break;
            case 13: Files(record)[c.Random.Next(Files(record).Count)]!["sha256"] = new string('0', 64); SetRecord(); mutation = "record-sha256"; break;
            case 14: Files(record)[c.Random.Next(Files(record).Count)]!["size"] = c.Pick(new JsonNode?[] { 0, 1, -1, long.MaxValue, "10" }); SetRecord(); mutation = "record-size"; break;
            case 15: Files(record).Add(Files(record)[0]!.DeepClone()); SetRecord(); mutation = "record-file-twice"; break;
            case 16: Files(record)[0]!["path"] = c.Pick(new[] { "../escape", "/etc/passwd", "a/../../b", "", "entry.json" }); SetRecord(); mutation = "record-path"; break;
            case 17: parts.RemoveAll(p => p.Name == victim); mutation = "file-missing"; break;
            case 18: parts.Add(("entry/unlisted.bin", "u"u8.ToArray())); mutation = "unlisted-file"; break;
            case 19:
            {
                var nuspec = parts.FindIndex(p => p.Name.EndsWith(".nuspec", StringComparison.Ordinal));
                parts[nuspec] = (parts[nuspec].Name, c.Chance(0.5) ? Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(parts[nuspec].Bytes).Replace(seed.Id, "LowRank.Cache.other", StringComparison.Ordinal)) : "<pack"u8.ToArray());
                mutation = "nuspec";
                break;
            }
            case 20:
            {
                // A part that inflates far past its recorded size (a zip bomb's shape; 256 MiB of zeros compresses to ~256 KiB).
                var i = parts.FindIndex(p => p.Name == victim);
                parts[i] = (victim, new byte[256 << 20]);
                mutation = "inflating-part";
                break;
            }
            default:
            {
                var i = parts.FindIndex(p => p.Name == victim);
                var bytes = parts[i].Bytes;
                if (bytes.Length > 0) bytes[c.Random.Next(bytes.Length)] ^= 0x01;
                mutation = "file-content";
                break;
            }
        }
        var nupkg = Path.Combine(c.CaseFolder, $"{seed.Id}.1.0.0.nupkg");
        Directory.CreateDirectory(c.CaseFolder);
        File.WriteAllBytes(nupkg, raw ?? CachePackageSeed.Zip(parts));
        var cacheFolder = Path.Combine(c.CaseFolder, "cache");
        return new FuzzCase(index, "remote-cache-package", mutation, ["cache", "import", nupkg, "--cache", cacheFolder, "--no-config"], c.CaseFolder)
        {
            Check = _ => Installed(new ModelCache(cacheFolder), seed.Entry),
        };
    }

    private static JsonArray Files(JsonObject record) => record["files"]!.AsArray();

    /// <summary>Null when the cache holds exactly the seed's entry, intact; else what differs.</summary>
    private static string? Installed(ModelCache cache, CacheEntry expected)
    {
        var entries = cache.List();
        if (entries.Count != 1) return $"import exited 0 but the cache holds {entries.Count} entries";
        var entry = entries[0];
        if (entry.Key != expected.Key) return $"import exited 0 and installed key {entry.Key[..12]}, not {expected.Key[..12]}";
        if (ModelCache.Verify(entry) is { Count: > 0 } problems) return "import exited 0 and installed a damaged entry: " + string.Join("; ", problems);
        if (ModelCache.Differences(expected.Record.Files, entry.Record.Files) is { Count: > 0 } differences) return "import exited 0 with other files than the seed's: " + string.Join("; ", differences);
        return null;
    }
}
