namespace LowRank.Cache;

/// <summary>
/// An exclusive, per-key lock between processes (and threads): a lock file under <c>.locks/</c> opened with
/// <see cref="FileShare.None"/>, which .NET maps to <c>flock(LOCK_EX)</c> on Unix and a sharing lock on Windows.
/// The kernel drops it when the holder dies, so a killed build never leaves a key locked. Lock files are never
/// deleted while anyone may use them (deleting would let two holders lock two different files).
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

    public static CacheLock? TryAcquire(string locksFolder, string key)
    {
        Directory.CreateDirectory(locksFolder);
        var path = Path.Combine(locksFolder, key + ".lock");
        try
        {
            return new CacheLock(key, new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None));
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
