namespace LowRank.Bench.Inference;

/// <summary>
/// This process's resident memory from /proc/self/status (Linux): current (VmRSS) and peak (VmHWM). The peak can be
/// reset (writing 5 to /proc/self/clear_refs), so one process measures the peak of each model it loads in turn.
/// Native allocations (libtorch, ONNX Runtime) count, which the GC's numbers miss.
/// </summary>
public static class ProcessMemory
{
    public static bool Available => File.Exists("/proc/self/status");

    public static long ResidentBytes => Read("VmRSS:");

    public static long PeakResidentBytes => Read("VmHWM:");

    /// <summary>Starts a new peak at the current resident size; false where the kernel does not allow it.</summary>
    public static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long Read(string key)
    {
        if (!Available) return 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (!line.StartsWith(key, StringComparison.Ordinal)) continue;
            var kilobytes = line[key.Length..].Trim().Split(' ')[0];
            return long.Parse(kilobytes, System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        return 0;
    }
}
