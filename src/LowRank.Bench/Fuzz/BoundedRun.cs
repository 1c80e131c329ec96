using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace LowRank.Bench.Fuzz;

/// <summary>The end of a child process run under a time limit and a resident-memory cap.</summary>
public sealed record BoundedResult(int? ExitCode, string Output, bool TimedOut, bool MemoryExceeded, long PeakRssBytes, TimeSpan Elapsed);

/// <summary>
/// Runs a program as a child process with a wall-clock limit and an RSS cap: VmRSS of the child and its
/// descendants is read from /proc every 50 ms, and the whole tree is killed (SIGKILL) when either bound is passed.
/// Output (stdout and stderr together) is kept up to 64 KiB.
/// </summary>
public static class BoundedRun
{
    private const int MaxOutput = 64 * 1024;

    public static BoundedResult Run(string program, IReadOnlyList<string> arguments, string workingDirectory,
        IReadOnlyDictionary<string, string?> environment, TimeSpan timeout, long rssCapBytes)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        foreach (var (name, value) in environment)
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        var output = new StringBuilder();
        void Append(string? line)
        {
            if (line is null) return;
            lock (output)
            {
                if (output.Length < MaxOutput) output.AppendLine(line);
            }
        }
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.StandardInput.Close(); // nothing reads a terminal: a prompt would hang otherwise
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        long peak = 0;
        bool timedOut = false, memory = false;
        while (!process.WaitForExit(50))
        {
            var rss = TreeRss(process.Id);
            peak = Math.Max(peak, rss);
            if (rss > rssCapBytes) memory = true;
            else if (clock.Elapsed > timeout) timedOut = true;
            if (!memory && !timedOut) continue;
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            process.WaitForExit();
            break;
        }
        process.WaitForExit(); // drains the output
        string text;
        lock (output) text = output.ToString();
        return new BoundedResult(timedOut || memory ? null : process.ExitCode, text, timedOut, memory, peak, clock.Elapsed);
    }

    /// <summary>Summed VmRSS of a process and its descendants (Linux /proc; 0 elsewhere or once they are gone).</summary>
    public static long TreeRss(int root)
    {
        if (!OperatingSystem.IsLinux()) return 0;
        long total = 0;
        var pending = new Stack<int>([root]);
        var seen = new HashSet<int>();
        while (pending.Count > 0)
        {
            var pid = pending.Pop();
            if (!seen.Add(pid)) continue;
            total += Rss(pid);
            try
            {
                foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
                {
                    var children = Path.Combine(task, "children");
                    if (!File.Exists(children)) continue;
                    foreach (var child in File.ReadAllText(children).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                        if (int.TryParse(child, NumberStyles.None, CultureInfo.InvariantCulture, out var c)) pending.Push(c);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return total;
    }

    private static long Rss(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (!line.StartsWith("VmRSS:", StringComparison.Ordinal)) continue;
                var kb = line["VmRSS:".Length..].Trim().Split(' ')[0];
                return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        return 0;
    }
}
