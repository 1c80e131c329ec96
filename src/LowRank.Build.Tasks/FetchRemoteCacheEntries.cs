using System.Diagnostics;
using System.Globalization;
using LowRank.Cache;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace LowRank.Build.Tasks;

/// <summary>
/// Before compressing: looks each local miss up in the remote cache (property <c>LowRankRemoteCache</c>, a NuGet
/// feed, see <see cref="RemoteCache"/>) and installs a hit into the local cache, so <see cref="CompressModel"/> then
/// finds it. Runs only on a local miss, so a no-change build never touches the feed. Works under the key's lock,
/// like compression: a build that is compressing or fetching the same key is waited for. A feed that cannot be
/// read, or refuses the credentials, is a warning (LRK5007, LRK5009: the build compresses instead); a package that fails verification is an error.
/// </summary>
// CA1001: MSBuild neither disposes task instances nor bounds when Cancel() may arrive, so the token source lives as long as the task.
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "MSBuild never disposes tasks; Cancel() may come at any time")]
public sealed class FetchRemoteCacheEntries : LowRankTask, ICancelableTask, IIncrementalTask
{
    private readonly CancellationTokenSource cancellation = new();

    /// <summary>Resolved items that missed the local cache.</summary>
    [Required] public ITaskItem[] Models { get; set; } = [];
    [Required] public string RemoteCache { get; set; } = "";
    [Required] public string ProjectDirectory { get; set; } = "";
    public int LockTimeoutMinutes { get; set; } = 24 * 60;
    public bool FailIfNotIncremental { get; set; }

    /// <summary>The items whose entry came from the feed.</summary>
    [Output] public ITaskItem[] Fetched { get; private set; } = [];

    public void Cancel() => cancellation.Cancel();

    protected override void ExecuteCore()
    {
        var remote = new RemoteCache(RemoteCache, ProjectDirectory);
        var fetched = new List<ITaskItem>();
        foreach (var group in Models.GroupBy(m => m.GetMetadata(MetadataNames.Key), StringComparer.Ordinal))
        {
            var model = group.First();
            var at = ItemLocation.FromMetadata(model, BuildEngine.ProjectFileOfTaskNode);
            var cache = new ModelCache(model.GetMetadata("CacheRoot"));
            var key = CacheKey.Parse(model.GetMetadata(MetadataNames.KeyText));
            try
            {
                EntryUse.HoldForBuild(BuildEngine, cache, key.Hash, cancellation.Token);
                if (cache.TryGet(key.Hash) is not null) continue;
                if (FailIfNotIncremental)
                {
                    LogItemError(Log, at, ErrorCodes.NotCached, $"{model.ItemSpec} (key {key.Hash[..12]}) is not in the local cache and would be looked up in {remote.Feed}");
                    continue;
                }
                using var held = cache.Lock(key.Hash, TimeSpan.FromMinutes(LockTimeoutMinutes), cancellation.Token,
                    () => Log.LogMessage(MessageImportance.High, $"LowRank: waiting for another build that holds {key.Hash[..12]}"));
                if (cache.TryGet(key.Hash) is not null) continue;
                var clock = Stopwatch.StartNew();
                var entry = remote.TryFetch(cache, held, key, expected: null, cancellation.Token);
                if (entry is null)
                {
                    Log.LogMessage(MessageImportance.High, $"LowRank: {model.ItemSpec} (key {key.Hash[..12]}) is not in the remote cache {remote.Feed}");
                    continue;
                }
                Log.LogMessage(MessageImportance.High,
                    $"LowRank: fetched {model.ItemSpec} (key {key.Hash[..12]}) from the remote cache {remote.Feed}: {entry.Record.Files.Count} files, {ByteSize.Format(entry.Record.TotalBytes)}, SHA-256s verified, in {clock.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)} s");
                fetched.AddRange(group.Select(m => new TaskItem(m)));
            }
            catch (LrkException e) when (e.Code is ErrorCodes.RemoteCacheFailed or ErrorCodes.RemoteCacheUnauthorized)
            {
                LogItemWarning(Log, at, e.Code, e.Message + "; treating it as a miss");
            }
            catch (LrkException e)
            {
                LogItemError(Log, at, e.Code, e.Message);
            }
        }
        Fetched = fetched.ToArray();
    }
}
