using LowRank.Cache;
using Microsoft.Build.Framework;

namespace LowRank.Build.Tasks;

/// <summary>
/// After a local compression, with <c>LowRankRemoteCachePush=true</c>: publishes each new entry to the remote cache
/// feed as a <c>LowRank.Cache.&lt;key&gt;</c> package (see <see cref="RemoteCache"/>), so other machines and CI fetch it
/// instead of compressing. Only entries compressed by this build are pushed: a cache hit never costs a round trip.
/// A push that fails is a warning: the build's own outputs are complete without it.
/// </summary>
public sealed class PushRemoteCacheEntries : LowRankTask
{
    /// <summary>The items <see cref="CompressModel"/> compressed in this build.</summary>
    [Required] public ITaskItem[] Models { get; set; } = [];
    [Required] public string RemoteCache { get; set; } = "";
    [Required] public string ProjectDirectory { get; set; } = "";
    /// <summary>
    /// Property LowRankRemoteCacheApiKey, for http feeds that require one; when empty, the environment variable
    /// LOWRANK_REMOTE_CACHE_API_KEY or the source's apikeys entry in nuget.config. Folder feeds need none.
    /// </summary>
    public string? ApiKey { get; set; }

    protected override void ExecuteCore()
    {
        var remote = new RemoteCache(RemoteCache, ProjectDirectory);
        foreach (var model in Models.GroupBy(m => m.GetMetadata(MetadataNames.Key), StringComparer.Ordinal).Select(g => g.First()))
        {
            var at = ItemLocation.FromMetadata(model, BuildEngine.ProjectFileOfTaskNode);
            var cache = new ModelCache(model.GetMetadata("CacheRoot"));
            var key = model.GetMetadata(MetadataNames.Key);
            try
            {
                var entry = cache.TryGet(key) ?? throw new LrkException(ErrorCodes.NotCached, $"{model.ItemSpec} (key {key[..12]}) is not in the local cache; nothing to push");
                var pushed = remote.Push(cache, entry, ApiKey, CancellationToken.None);
                Log.LogMessage(MessageImportance.High, pushed
                    ? $"LowRank: pushed {model.ItemSpec} (key {key[..12]}, {ByteSize.Format(entry.Record.TotalBytes)}) to the remote cache {remote.Feed} as {LowRank.Build.Tasks.RemoteCache.Describe(key)}"
                    : $"LowRank: the remote cache {remote.Feed} already holds {LowRank.Build.Tasks.RemoteCache.Describe(key)} for {model.ItemSpec}");
            }
            catch (LrkException e)
            {
                LogItemWarning(Log, at, e.Code, e.Message);
            }
        }
    }
}
