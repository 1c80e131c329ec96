using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using LowRank.Cache;
using LowRank.Compression;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace LowRank.Build.Tasks;

/// <summary>
/// Runs on every build and must stay cheap: for each <c>CompressedModel</c> item it validates the metadata,
/// resolves the source model, digests it (sidecar: files are only stat'ed when unchanged), digests the
/// calibration text, builds the cache key and looks it up. It never compresses; <see cref="CompressModel"/> does,
/// for the items that come out with <c>CacheHit=false</c>. Errors point at the item's line in the project file.
/// </summary>
public sealed partial class ResolveCompressedModels : LowRankTask
{
    [Required] public ITaskItem[] CompressedModels { get; set; } = [];
    [Required] public string ProjectDirectory { get; set; } = "";
    /// <summary>obj/…/lowrank/: the tool version memo (for executables) and generated files.</summary>
    [Required] public string StateDirectory { get; set; } = "";
    public string? ToolPath { get; set; }
    public string? PackagedToolPath { get; set; }
    /// <summary>Overrides LOWRANK_CACHE for this project (property LowRankCacheDirectory).</summary>
    public string? CacheDirectory { get; set; }

    [Output] public ITaskItem[] ResolvedModels { get; private set; } = [];

    protected override void ExecuteCore()
    {
        var clock = Stopwatch.StartNew();
        var parsed = new Dictionary<string, XDocument?>(StringComparer.Ordinal);
        var projectFile = BuildEngine.ProjectFileOfTaskNode;
        var cache = string.IsNullOrWhiteSpace(CacheDirectory) ? ModelCache.Default : new ModelCache(CacheDirectory);
        ToolCommand? tool = null;
        string? toolVersion = null;
        var resolved = new List<ITaskItem>();
        var outputNames = new Dictionary<string, ItemLocation>(StringComparer.OrdinalIgnoreCase);
        var hashed = 0;

        foreach (var item in CompressedModels)
        {
            var at = ItemLocation.Find(item, "CompressedModel", projectFile, parsed);
            try
            {
                var request = ParseRequest(item);
                var formats = request.Formats;
                var source = ModelSource.Resolve(item.ItemSpec, ProjectDirectory, item.GetMetadata(MetadataNames.Revision));
                var outputName = item.GetMetadata(MetadataNames.OutputName) is { Length: > 0 } name ? name.Trim() : DefaultOutputName(source);
                if (!OutputNamePattern().IsMatch(outputName))
                    throw new LrkException(ErrorCodes.BadItem, $"OutputName '{outputName}' must be letters, digits, '_', '-' or '.', starting with a letter");
                if (outputNames.TryGetValue(outputName, out var other))
                    throw new LrkException(ErrorCodes.BadItem, $"two CompressedModel items are named '{outputName}' (the other is at line {other.Line}); set OutputName on one of them");
                outputNames[outputName] = at;

                var sidecar = DigestSidecar.Open(File.Exists(source) ? Path.GetDirectoryName(source)! : source, Path.Combine(cache.Root, ".digests"));
                var digest = ModelDigest.Compute(source, sidecar);
                hashed += digest.HashedFiles;
                var calibrationSidecar = DigestSidecar.Open(ProjectDirectory, Path.Combine(cache.Root, ".digests"));
                var calibration = CalibrationInput.Resolve(item.GetMetadata(MetadataNames.Calibration), item.GetMetadata(MetadataNames.CalibrationStart),
                    item.GetMetadata(MetadataNames.CalibrationEnd), ProjectDirectory, calibrationSidecar, Path.Combine(cache.Root, ".digests"));
                calibrationSidecar.Save();

                tool ??= ToolLocator.Resolve(ToolPath, PackagedToolPath);
                toolVersion ??= ToolLocator.Version(tool, StateDirectory);
                request = request with { Calibration = calibration?.Argument, CalibrationStart = calibration?.Start, CalibrationEnd = calibration?.End };
                var key = request.Key(digest.Digest, calibration?.KeyText, toolVersion);
                EntryUse.HoldForBuild(BuildEngine, cache, key.Hash); // before looking: a prune cannot take what this build found
                var hit = cache.TryGet(key.Hash) is not null;

                var output = new TaskItem(item);
                output.SetMetadata(MetadataNames.Method, request.Method.Key());
                output.SetMetadata(MetadataNames.Ratio, CompressionRatio.Format(request.Ratio));
                output.SetMetadata(MetadataNames.FactorDtype, request.FactorDtype ?? "");
                output.SetMetadata(MetadataNames.Arguments, JsonSerializer.Serialize(request.ToArguments()));
                output.SetMetadata(MetadataNames.OutputName, outputName);
                output.SetMetadata(MetadataNames.GenerateClass, GeneratesClass(item) ? "true" : "false");
                output.SetMetadata(MetadataNames.Formats, formats.Canonical);
                output.SetMetadata(MetadataNames.Key, key.Hash);
                output.SetMetadata(MetadataNames.KeyText, key.CanonicalText);
                output.SetMetadata(MetadataNames.CacheHit, hit ? "true" : "false");
                output.SetMetadata(MetadataNames.SourceModel, source);
                output.SetMetadata(MetadataNames.CalibrationFile, calibration?.Argument ?? "");
                output.SetMetadata(MetadataNames.ToolPath, tool.Path);
                output.SetMetadata(MetadataNames.ToolVersion, toolVersion);
                output.SetMetadata(MetadataNames.ItemFile, at.File);
                output.SetMetadata(MetadataNames.ItemLine, at.Line.ToString(CultureInfo.InvariantCulture));
                output.SetMetadata(MetadataNames.ItemColumn, at.Column.ToString(CultureInfo.InvariantCulture));
                output.SetMetadata("CacheRoot", cache.Root);
                resolved.Add(output);
                Log.LogMessage(MessageImportance.Normal, $"LowRank: {item.ItemSpec} ({request.Method.Key()}, ratio {CompressionRatio.Format(request.Ratio)}, {formats}) -> key {key.Hash[..12]}, {(hit ? "cached" : "not cached")}");
            }
            catch (LrkException e)
            {
                LogItemError(Log, at, e.Code, e.Message);
            }
        }
        ResolvedModels = resolved.ToArray();
        Log.LogMessage(MessageImportance.Normal, $"LowRank: resolved {resolved.Count} compressed model(s) in {clock.ElapsedMilliseconds} ms ({hashed} file(s) hashed)");
    }

    /// <summary>The item's knobs, parsed once with the same table <c>compress</c> uses (<see cref="CompressionRequest"/>).</summary>
    /// <remarks>The calibration text is added once resolved (<see cref="CalibrationInput"/>).</remarks>
    internal static CompressionRequest ParseRequest(ITaskItem item) => new()
    {
        Method = CompressionMethods.Parse(item.GetMetadata(MetadataNames.Method)),
        Ratio = CompressionRatio.Parse(item.GetMetadata(MetadataNames.Ratio), MetadataNames.Ratio),
        Samples = Optional(item, MetadataNames.Samples, CalibrationNumbers.ParseCount),
        SeqLen = Optional(item, MetadataNames.SeqLen, CalibrationNumbers.ParseCount),
        Seed = Optional(item, MetadataNames.Seed, CalibrationNumbers.ParseSeed),
        FactorDtype = item.GetMetadata(MetadataNames.FactorDtype) is { } dtype && !string.IsNullOrWhiteSpace(dtype)
            ? FactorDtypeNames.Canonical(dtype, MetadataNames.FactorDtype, ErrorCodes.BadItem)
            : null,
        ToolArguments = SplitArguments(item.GetMetadata(MetadataNames.ToolArguments)),
        Formats = ParseFormats(item),
        Device = item.GetMetadata(MetadataNames.Device) is { } device && !string.IsNullOrWhiteSpace(device)
            ? DeviceNames.Parse(device, MetadataNames.Device)
            : null,
    };

    /// <summary>GenerateClass: anything but "false" (any case) generates the model's class; the resolved item says true or false.</summary>
    private static bool GeneratesClass(ITaskItem item) =>
        !string.Equals(item.GetMetadata(MetadataNames.GenerateClass).Trim(), "false", StringComparison.OrdinalIgnoreCase);

    /// <summary>Format="onnx" or Formats="safetensors;onnx" (either spelling; both set must agree).</summary>
    private static ModelFormats ParseFormats(ITaskItem item)
    {
        var format = item.GetMetadata(MetadataNames.Format).Trim();
        var formats = item.GetMetadata(MetadataNames.Formats).Trim();
        try
        {
            var one = ModelFormats.Parse(format);
            var many = ModelFormats.Parse(formats);
            if (format.Length > 0 && formats.Length > 0 && one != many)
                throw new LrkException(ErrorCodes.BadItem, $"Format='{format}' and Formats='{formats}' disagree; set one of them");
            return format.Length > 0 ? one : many;
        }
        catch (LrkException e) when (e.Code == ErrorCodes.BadArgument)
        {
            throw new LrkException(ErrorCodes.BadItem, (format.Length > 0 ? "Format" : "Formats") + ": " + e.Message);
        }
    }

    /// <summary>A number metadata parsed with the request's rule (<see cref="CalibrationNumbers"/>), or null when empty.</summary>
    private static int? Optional(ITaskItem item, string name, Func<string, string, string, int> parse)
    {
        var text = item.GetMetadata(name).Trim();
        return text.Length == 0 ? null : parse(text, name, ErrorCodes.BadItem);
    }

    internal static string[] SplitArguments(string text) =>
        text.Split([' ', '\t', '\n', '\r', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string DefaultOutputName(string source)
    {
        var name = Path.GetFileName(source.TrimEnd('/', '\\'));
        if (File.Exists(source)) name = Path.GetFileNameWithoutExtension(name);
        // An HF snapshot folder is named by its commit: use the repository name (models--org--name) instead.
        if (source.Contains("/snapshots/", StringComparison.Ordinal))
            name = Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(source))!).Split("--").Last();
        var cleaned = InvalidNameCharacters().Replace(name, "_");
        return cleaned.Length > 0 && char.IsLetter(cleaned[0]) ? cleaned : "Model_" + cleaned;
    }

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9_.\-]*$")]
    private static partial Regex OutputNamePattern();

    [GeneratedRegex(@"[^A-Za-z0-9_.\-]")]
    private static partial Regex InvalidNameCharacters();
}
