using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace LowRank.Torch;

/// <summary>
/// Samples the GPU's used memory with <c>nvidia-smi --query-gpu=memory.used -lms</c> in the background.
/// TorchSharp 0.107 exposes no allocator statistics (no <c>torch.cuda.max_memory_allocated</c>), so this reads the
/// driver's view: memory the process's caching allocator has reserved plus the CUDA context — an upper bound of what
/// PyTorch would report as allocated. Peaks between short spikes of less than the interval can be missed.
/// </summary>
public sealed class GpuMemorySampler : IDisposable
{
    private readonly Process? process;
    private readonly ConcurrentQueue<(double Seconds, double MiB)> samples = new();
    private readonly Stopwatch clock = Stopwatch.StartNew();

    private GpuMemorySampler(Process? process, string method)
    {
        this.process = process;
        Method = method;
        if (process is null) return;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line && double.TryParse(line.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var mib))
                samples.Enqueue((clock.Elapsed.TotalSeconds, mib));
        };
        process.BeginOutputReadLine();
    }

    /// <summary>How the numbers were obtained (for the benchmark output), or why there are none.</summary>
    public string Method { get; }

    public bool Available => process is not null;

    /// <summary>Seconds since the sampler started (to mark windows).</summary>
    public double Now => clock.Elapsed.TotalSeconds;

    /// <summary>Starts sampling GPU <paramref name="gpuIndex"/> every <paramref name="intervalMs"/> ms; a sampler without
    /// samples when nvidia-smi cannot be started (no NVIDIA driver).</summary>
    public static GpuMemorySampler Start(int gpuIndex = 0, int intervalMs = 50)
    {
        try
        {
            var info = new ProcessStartInfo("nvidia-smi")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var argument in new[] { "--query-gpu=memory.used", "--format=csv,noheader,nounits", $"-lms={intervalMs}", $"-i={gpuIndex}" })
                info.ArgumentList.Add(argument);
            var process = Process.Start(info);
            return process is null
                ? new GpuMemorySampler(null, "unavailable: nvidia-smi did not start")
                : new GpuMemorySampler(process, $"nvidia-smi memory.used of GPU {gpuIndex} every {intervalMs} ms (driver view: allocator reservations + CUDA context)");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new GpuMemorySampler(null, $"unavailable: {e.Message}");
        }
    }

    /// <summary>The largest sample in [<paramref name="from"/>, <paramref name="to"/>] seconds, in GiB; null without samples.</summary>
    public double? PeakGiB(double from, double to)
    {
        var inside = samples.Where(s => s.Seconds >= from && s.Seconds <= to).Select(s => s.MiB).ToArray();
        return inside.Length == 0 ? null : inside.Max() / 1024.0;
    }

    /// <summary>The smallest sample before <paramref name="before"/> seconds (memory other processes and the context hold), in GiB.</summary>
    public double? BaselineGiB(double before)
    {
        var inside = samples.Where(s => s.Seconds <= before).Select(s => s.MiB).ToArray();
        return inside.Length == 0 ? null : inside.Min() / 1024.0;
    }

    public void Dispose()
    {
        if (process is null) return;
        try
        {
            if (!process.HasExited) process.Kill();
            process.WaitForExit(2000);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        process.Dispose();
    }
}
