using System.Diagnostics;
using System.Text;

namespace LowRank.Build.Tests;

/// <summary>The outcome of one dotnet command: exit code, interleaved stdout+stderr, wall time.</summary>
public sealed record DotnetResult(int ExitCode, string Output, TimeSpan Elapsed)
{
    public DotnetResult ShouldSucceed()
    {
        Assert.True(ExitCode == 0, $"exit {ExitCode}:\n{Output}");
        return this;
    }
}

/// <summary>Runs the dotnet CLI as a user would, with an environment isolated from the machine's NuGet and LowRank state.</summary>
public static class Dotnet
{
    public static DotnetResult Run(string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        Run(workingDirectory, environment, args, onLine: null, timeout: TimeSpan.FromMinutes(8));

    /// <param name="onLine">Called for each output line with the running process (e.g. to kill it at a given point).</param>
    public static DotnetResult Run(string workingDirectory, IReadOnlyDictionary<string, string> environment, string[] args,
        Action<string, Process>? onLine, TimeSpan timeout) =>
        RunProgram("dotnet", workingDirectory, environment, args, onLine, timeout);

    /// <summary>
    /// Runs <paramref name="program"/> (e.g. a published app's executable) with exactly <paramref name="environment"/>:
    /// nothing of this process's environment is inherited, as on a machine that has none of it.
    /// </summary>
    public static DotnetResult RunIsolated(string program, string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        RunProgram(program, workingDirectory, environment, args, onLine: null, TimeSpan.FromMinutes(8), inherit: false);

    private static DotnetResult RunProgram(string program, string workingDirectory, IReadOnlyDictionary<string, string> environment, string[] args,
        Action<string, Process>? onLine, TimeSpan timeout, bool inherit = true)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        if (!inherit) start.Environment.Clear();
        foreach (var (name, value) in environment) start.Environment[name] = value;
        var output = new StringBuilder();
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = start };
        void Handle(string? line)
        {
            if (line is null) return;
            lock (output) output.AppendLine(line);
            onLine?.Invoke(line, process);
        }
        process.OutputDataReceived += (_, e) => Handle(e.Data);
        process.ErrorDataReceived += (_, e) => Handle(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new TimeoutException($"{program} {string.Join(' ', args)} ran over {timeout}:\n{output}");
        }
        process.WaitForExit();
        lock (output) return new DotnetResult(process.ExitCode, output.ToString(), clock.Elapsed);
    }
}
