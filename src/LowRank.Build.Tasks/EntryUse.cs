using LowRank.Cache;
using Microsoft.Build.Framework;

namespace LowRank.Build.Tasks;

/// <summary>
/// Keeps <c>cache prune</c> away from the entries a build is using: the first task of a build that resolves,
/// compresses or fetches a key takes the key's shared use lock and registers it with MSBuild for the rest of the
/// build (<see cref="RegisteredTaskObjectLifetime.Build"/>; MSBuild disposes it, and the lock with it, when the
/// build ends). Linking the entry's files into bin/ happens after the key's exclusive lock is gone; the use lock is
/// what still protects them then. A killed build's locks are dropped by the kernel.
/// </summary>
internal static class EntryUse
{
    private static readonly TimeSpan Wait = TimeSpan.FromMinutes(5);

    /// <summary>Holds the key's use lock for the rest of the build (once per build, cache and key).</summary>
    public static void HoldForBuild(IBuildEngine engine, ModelCache cache, string key, CancellationToken cancellation = default)
    {
        if (engine is not IBuildEngine4 registry) return;
        var id = $"LowRank.EntryUse|{cache.Root}|{key}";
        if (registry.GetRegisteredTaskObject(id, RegisteredTaskObjectLifetime.Build) is not null) return;
        var use = CacheLock.AcquireUse(cache.LocksFolder, key, Wait, cancellation);
        registry.RegisterTaskObject(id, use, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
    }
}
