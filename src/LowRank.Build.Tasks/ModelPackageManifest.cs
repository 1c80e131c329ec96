using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LowRank.Cache;

namespace LowRank.Build.Tasks;

/// <summary>
/// <c>lowrank/manifests/&lt;OutputName&gt;.json</c> in a LowRank.Sdk model package: which cache entry the package
/// carries (key, key fields, every file with size and SHA-256) and how (<see cref="Layout"/>): <c>files</c>, the files
/// are in the package under <c>lowrank/&lt;OutputName&gt;/</c>; <c>pointer</c>, they are fetched at build time from
/// <see cref="RemoteCache"/> and checked against this list.
/// </summary>
internal sealed record ModelPackageManifest
{
    public const string FilesLayout = "files";
    public const string PointerLayout = "pointer";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // A file for people and tools, never embedded in HTML: keep '+' in versions readable.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public int Format { get; init; } = 1;
    public required string Package { get; init; }
    public string? Version { get; init; }
    public required string Name { get; init; }
    public required string Layout { get; init; }
    public required string Key { get; init; }
    public required JsonObject KeyFields { get; init; }
    public required List<CacheFile> Files { get; init; }
    public long TotalBytes { get; init; }
    public RemoteCacheLocation? RemoteCache { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static ModelPackageManifest Read(string path)
    {
        try
        {
            var manifest = JsonSerializer.Deserialize<ModelPackageManifest>(File.ReadAllText(path), Json);
            if (manifest is { Key: not null, KeyFields: not null, Files: not null }) return manifest;
        }
        catch (JsonException e)
        {
            throw new LrkException(ErrorCodes.BadArtifact, $"{path} is not a model package manifest: {e.Message}");
        }
        throw new LrkException(ErrorCodes.BadArtifact, $"{path} is not a model package manifest");
    }
}

/// <summary>Where a pointer package's entry lives: the feed given at pack time and the entry's package there.</summary>
internal sealed record RemoteCacheLocation(string Feed, string Package, string Version);
