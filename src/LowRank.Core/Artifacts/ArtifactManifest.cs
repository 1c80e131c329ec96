using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LowRank.Cache;

namespace LowRank.Artifacts;

/// <summary>One file of the artifact: path relative to the artifact folder ('/'-separated), size in bytes, SHA-256 (lower-case hex).</summary>
public sealed record ManifestFile(string Path, long Size, string Sha256);

/// <summary>The program that wrote the artifact.</summary>
public sealed record ManifestTool(string Name, string Version)
{
    /// <summary>LowRank.Core's informational version (the package version, plus the commit when built from git).</summary>
    public static ManifestTool Current(string name = "LowRank.Tool") =>
        new(name, typeof(ManifestTool).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? typeof(ManifestTool).Assembly.GetName().Version?.ToString() ?? "unknown");
}

/// <summary>The model that was compressed: where it was read from, and its content digest (<see cref="ModelDigest"/>:
/// SHA-256 over "path\tsize\taddress" lines of its files, independent of the folder's location).</summary>
public sealed record ManifestSource(string Path, string Digest, IReadOnlyList<ModelFileDigest> Files);

/// <summary>The calibration text (where it came from and the SHA-256 of the exact text) and the protocol that turned it into samples.</summary>
public sealed record ManifestCalibration(string Source, string SourceSha256, JsonNode? Protocol);

/// <summary>The method and its result; <see cref="Options"/> holds every knob the method ran with.</summary>
public sealed record ManifestMethod(string Name, double RequestedRatio, double AchievedRatio, double AchievedRatioModel, string FactorDtype, JsonObject? Options);

/// <summary>
/// <c>lowrank-manifest.json</c>: the provenance of an artifact and the SHA-256 of every other file in it, so the
/// artifact can be verified (<see cref="ArtifactVerifier"/>) and reproduced. Written last, after every file it lists.
/// </summary>
public sealed record ArtifactManifest
{
    public string Format { get; init; } = ArtifactFormat.ManifestFormatName;
    public int FormatVersion { get; init; } = ArtifactFormat.PlainVersion;
    public required ManifestTool Tool { get; init; }
    public required DateTimeOffset CreatedUtc { get; init; }
    public required ManifestSource Source { get; init; }
    public required ManifestMethod Method { get; init; }
    public int? Seed { get; init; }
    public ManifestCalibration? Calibration { get; init; }

    /// <summary>How <see cref="Metrics"/> were measured (text source, digest, token protocol, window length).</summary>
    public JsonNode? Evaluation { get; init; }

    /// <summary>Measured numbers, e.g. <c>ppl_before</c>, <c>ppl_after</c>.</summary>
    public JsonObject? Metrics { get; init; }

    /// <summary>Wall-clock seconds per stage (load, calibrate, compress, evaluate, write).</summary>
    public IReadOnlyDictionary<string, double> TimingsSeconds { get; init; } = new Dictionary<string, double>();

    /// <summary>Tensors other than factors whose values differ from the source (a method that updates a bias or keeps a
    /// linear dense but changed); empty when every untouched tensor is byte-identical to the source.</summary>
    public IReadOnlyList<string> ModifiedTensors { get; init; } = [];

    public required IReadOnlyList<ManifestFile> Files { get; init; }

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions) + "\n";

    /// <summary>Reads <c>lowrank-manifest.json</c> of an artifact folder; a missing or malformed manifest is <see cref="ErrorCodes.BadArtifact"/>.</summary>
    public static ArtifactManifest Read(string artifactFolder)
    {
        var path = Path.Combine(artifactFolder, ArtifactFormat.ManifestFileName);
        if (!File.Exists(path))
            throw new LrkException(ErrorCodes.BadArtifact, $"{artifactFolder}: no {ArtifactFormat.ManifestFileName} (not a compressed artifact, or one written before it was complete)");
        try
        {
            var manifest = JsonSerializer.Deserialize<ArtifactManifest>(File.ReadAllText(path), JsonOptions)
                ?? throw new LrkException(ErrorCodes.BadArtifact, $"{path}: empty manifest");
            if (manifest.Format != ArtifactFormat.ManifestFormatName)
                throw new LrkException(ErrorCodes.BadArtifact, $"{path}: format is '{manifest.Format}', expected '{ArtifactFormat.ManifestFormatName}'");
            if (manifest.FormatVersion > ArtifactFormat.Version)
                throw new LrkException(ErrorCodes.BadArtifact, $"{path}: format_version {manifest.FormatVersion} is newer than this tool reads ({ArtifactFormat.Version})");
            return manifest;
        }
        catch (JsonException e)
        {
            throw new LrkException(ErrorCodes.BadArtifact, $"{path}: not a valid manifest ({e.Message})");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(ErrorCodes.BadArtifact, $"{path}: cannot be read ({e.Message})");
        }
    }
}
