using System.Diagnostics;
using System.Text;

namespace LowRank.Testing;

/// <summary>
/// Runs a program as a user would, as a separate process: both streams are read line by line as they come (UTF-8),
/// a run past its time limit has its whole process tree killed and throws with what it printed so far.
/// </summary>
public static class ProcessRunner
{
    public static ProcessResult Run(string program, IEnumerable<string> arguments, string workingDirectory, ProcessOptions? options = null)
    {
        options ??= new ProcessOptions();
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        if (!options.InheritEnvironment) start.Environment.Clear();
        foreach (var name in start.Environment.Keys.Where(k => options.DropInheritedPrefixes.Any(p => k.StartsWith(p, StringComparison.Ordinal))).ToList())
            start.Environment.Remove(name);
        foreach (var (name, value) in options.Environment)
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }

        var gate = new object();
        var stdout = new List<string>();
        var stderr = new List<string>();
        var lines = new List<string>();
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = start };
        void Handle(string? line, bool isError)
        {
            if (line is null) return;
            lock (gate)
            {
                (isError ? stderr : stdout).Add(line);
                lines.Add(line);
            }
            options.OnLine?.Invoke(line, isError, process);
        }
        process.OutputDataReceived += (_, e) => Handle(e.Data, isError: false);
        process.ErrorDataReceived += (_, e) => Handle(e.Data, isError: true);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(options.Timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            lock (gate) throw new TimeoutException($"{program} {string.Join(' ', start.ArgumentList)} ran over {options.Timeout}:\n{string.Join('\n', lines)}");
        }
        process.WaitForExit();   // the stream callbacks have all run only after the parameterless wait
        lock (gate) return new ProcessResult(process.ExitCode, [.. stdout], [.. stderr], [.. lines], clock.Elapsed);
    }
}
