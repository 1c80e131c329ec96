using System.Diagnostics;
using System.Globalization;
using LowRank.Cache;
using Microsoft.Build.Framework;

namespace LowRank.Build.Tasks;

/// <summary>
/// The consumer side of a pointer package (a LowRank.Sdk package whose models were too large to carry, see
/// <c>LowRankPackageMaxSize</c>): each <c>LowRankModelPointer</c> item names a manifest. The entry is taken from the
/// local cache when it is there with exactly the manifest's files; otherwise it is fetched from the remote cache
/// (the consumer's <c>LowRankRemoteCache</c> first, then the feed recorded at pack time), verified against the
/// package's entry.json and the manifest, and installed into the local cache. The files then go to bin/ and
/// publish/ like any compressed model's. Design-time builds never run it (the targets skip it).
/// </summary>
// CA1001: MSBuild neither disposes task instances nor bounds when Cancel() may arrive, so the token source lives as long as the task.
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "MSBuild never disposes tasks; Cancel() may come at any time")]
public sealed class ResolveModelPointers : LowRankTask, ICancelableTask, IIncrementalTask
{
    private readonly CancellationTokenSource cancellation = new();

    /// <summary>Manifest files, with metadata OutputName and Feed (written by the package's targets).</summary>
    [Required] public ITaskItem[] Pointers { get; set; } = [];
    [Required] public string ModelsFolder { get; set; } = "";
    [Required] public string ProjectDirectory { get; set; } = "";
    public string? RemoteCache { get; set; }
    public string? CacheDirectory { get; set; }
    public bool FailIfNotIncremental { get; set; }
    public int LockTimeoutMinutes { get; set; } = 24 * 60;

    [Output] public ITaskItem[] ModelFiles { get; private set; } = [];

    public void Cancel() => cancellation.Cancel();

    protected override void ExecuteCore()
    {
        var cache = string.IsNullOrWhiteSpace(CacheDirectory) ? ModelCache.Default : new ModelCache(CacheDirectory);
        var files = new List<ITaskItem>();
        foreach (var pointer in Pointers)
        {
            var manifest = ModelPackageManifest.Read(pointer.ItemSpec);
            var label = $"model '{manifest.Name}' of package {manifest.Package} {manifest.Version}";
            try
            {
                var key = CacheKey.Parse(CanonicalJson.Serialize(manifest.KeyFields));
                if (key.Hash != manifest.Key) throw new LrkException(ErrorCodes.BadArtifact, $"{pointer.ItemSpec}: its key fields hash to {key.Hash[..12]}…, not to its key {manifest.Key}");
                EntryUse.HoldForBuild(BuildEngine, cache, key.Hash, cancellation.Token);
                var entry = cache.TryGet(key.Hash);
                entry ??= Fetch(cache, key, manifest, pointer, label);
                if (entry is null) continue;
                if (ModelCache.Differences(manifest.Files, entry.Record.Files) is { Count: > 0 } differences)
                    throw new LrkException(ErrorCodes.HashMismatch,
                        $"{label}: the local cache entry {entry.Folder} has the package's key but other files ({string.Join("; ", differences)}); it was made elsewhere from the same inputs (e.g. on another device). Delete that folder to get the package's files");
                ModelCache.Touch(entry);
                var outputName = pointer.GetMetadata(MetadataNames.OutputName) is { Length: > 0 } name ? name : manifest.Name;
                files.AddRange(EmitCompressedModelOutputs.FileItems(entry, EmitCompressedModelOutputs.OutputPrefix(ModelsFolder, outputName), outputName));
            }
            catch (LrkException e)
            {
                Log.LogError("LowRank", e.Code, null, BuildEngine.ProjectFileOfTaskNode, 0, 0, 0, 0, e.Message);
            }
        }
        ModelFiles = files.ToArray();
    }

    private CacheEntry? Fetch(ModelCache cache, CacheKey key, ModelPackageManifest manifest, ITaskItem pointer, string label)
    {
        var feeds = new[] { RemoteCache, pointer.GetMetadata("Feed"), manifest.RemoteCache?.Feed }
            .Where(f => !string.IsNullOrWhiteSpace(f)).Select(f => new RemoteCache(f!, ProjectDirectory))
            .DistinctBy(f => f.Feed, StringComparer.Ordinal).ToList();
        if (FailIfNotIncremental)
            throw new LrkException(ErrorCodes.NotCached, $"{label} is not in the local cache and would be fetched");
        if (feeds.Count == 0)
            throw new LrkException(ErrorCodes.PackageNotFound, $"{label} is a pointer package and names no feed to fetch {LowRank.Build.Tasks.RemoteCache.Describe(key.Hash)} from; set LowRankRemoteCache");
        using var held = cache.Lock(key.Hash, TimeSpan.FromMinutes(LockTimeoutMinutes), cancellation.Token,
            () => Log.LogMessage(MessageImportance.High, $"LowRank: waiting for another build that holds {key.Hash[..12]}"));
        if (cache.TryGet(key.Hash) is { } done) return done;
        var tried = new List<string>();
        foreach (var feed in feeds)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                var entry = feed.TryFetch(cache, held, key, manifest.Files, cancellation.Token);
                if (entry is null)
                {
                    tried.Add($"{feed.Feed} (not there)");
                    continue;
                }
                Log.LogMessage(MessageImportance.High,
                    $"LowRank: fetched {label} (key {key.Hash[..12]}) from {feed.Feed}: {entry.Record.Files.Count} files, {ByteSize.Format(entry.Record.TotalBytes)}, SHA-256s verified, in {clock.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)} s");
                return entry;
            }
            catch (LrkException e) when (e.Code is ErrorCodes.RemoteCacheFailed or ErrorCodes.RemoteCacheUnauthorized)
            {
                tried.Add($"{feed.Feed} ({e.Message})");
            }
        }
        throw new LrkException(ErrorCodes.PackageNotFound, $"{label} is a pointer package: its entry {LowRank.Build.Tasks.RemoteCache.Describe(key.Hash)} is in no feed (tried: {string.Join("; ", tried)})");
    }
}
