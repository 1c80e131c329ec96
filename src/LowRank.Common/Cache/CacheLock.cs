namespace LowRank.Cache;

/// <summary>
/// An exclusive, per-key lock between processes (and threads): a lock file under <c>.locks/</c> opened with
/// <see cref="FileShare.None"/>, which .NET maps to <c>flock(LOCK_EX)</c> on Unix and a sharing lock on Windows.
/// The kernel drops it when the holder dies, so a killed build never leaves a key locked. Lock files are never
/// deleted while anyone may use them (deleting would let two holders lock two different files).
/// A second, shared kind (<see cref="TryAcquireUse"/>, <c>&lt;key&gt;.use</c>, <c>flock(LOCK_SH)</c>) marks an
/// entry as in use by a build between finding it and linking its files; <c>cache prune</c> deletes an entry only
/// when it can take both the key's lock and its use lock exclusively.
/// </summary>
public sealed class CacheLock : IDisposable
{
    private readonly FileStream stream;

    private CacheLock(string key, FileStream stream)
    {
        Key = key;
        this.stream = stream;
    }

    public string Key { get; }

    public static CacheLock? TryAcquire(string locksFolder, string key) => TryOpen(locksFolder, key, ".lock", shared: false);

    /// <summary>
    /// The entry's use lock: shared (<paramref name="exclusive"/> false) for builds that are using the entry, any
    /// number at once; exclusive for <c>cache prune</c>, which gets it only when no build uses the entry.
    /// </summary>
    public static CacheLock? TryAcquireUse(string locksFolder, string key, bool exclusive = false) => TryOpen(locksFolder, key, ".use", shared: !exclusive);

    /// <summary>Waits (50 ms steps) for a shared use lock; only a prune deleting the entry holds it exclusively, briefly.</summary>
    public static CacheLock AcquireUse(string locksFolder, string key, TimeSpan timeout, CancellationToken cancellation)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (TryAcquireUse(locksFolder, key) is { } held) return held;
            if (DateTime.UtcNow > deadline)
                throw new LrkException(ErrorCodes.CacheLocked, $"cache entry {key[..Math.Min(12, key.Length)]} stayed locked by a cache prune for {timeout.TotalSeconds:F0} s");
            cancellation.WaitHandle.WaitOne(50);
            cancellation.ThrowIfCancellationRequested();
        }
    }

    private static CacheLock? TryOpen(string locksFolder, string key, string suffix, bool shared)
    {
        Directory.CreateDirectory(locksFolder);
        var path = Path.Combine(locksFolder, key + suffix);
        try
        {
            // FileShare.None is flock(LOCK_EX); any sharing with read-only access is flock(LOCK_SH).
            var stream = shared
                ? new FileStream(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None)
                : new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
            return new CacheLock(key, stream);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Waits (backing off from 50 ms to 1 s) until the lock is free; <paramref name="waiting"/> is called once when it is not.</summary>
    public static CacheLock Acquire(string locksFolder, string key, TimeSpan timeout, CancellationToken cancellation, Action? waiting = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        var delay = 50;
        var told = false;
        while (true)
        {
            var held = TryAcquire(locksFolder, key);
            if (held is not null) return held;
            if (!told)
            {
                waiting?.Invoke();
                told = true;
            }
            if (DateTime.UtcNow > deadline)
                throw new LrkException(ErrorCodes.CacheLocked, $"cache entry {key[..12]} stayed locked by another build for {timeout.TotalMinutes:F0} min");
            cancellation.WaitHandle.WaitOne(delay);
            cancellation.ThrowIfCancellationRequested();
            delay = Math.Min(delay * 2, 1000);
        }
    }

    public void Dispose() => stream.Dispose();
}
