using System.Diagnostics;

namespace LowRank.Build.Tests;

/// <summary>Runs the dotnet CLI as a user would, with an environment isolated from the machine's NuGet and LowRank state.</summary>
public static class Dotnet
{
    public static ProcessResult Run(string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        Run(workingDirectory, environment, args, onLine: null, timeout: TimeSpan.FromMinutes(8));

    /// <param name="onLine">Called for each output line (stdout or stderr) with the running process (e.g. to kill it at a given point).</param>
    public static ProcessResult Run(string workingDirectory, IReadOnlyDictionary<string, string> environment, string[] args,
        Action<string, Process>? onLine, TimeSpan timeout) =>
        ProcessRunner.Run("dotnet", args, workingDirectory, new ProcessOptions
        {
            Environment = Nullable(environment),
            OnLine = onLine is null ? null : (line, _, process) => onLine(line, process),
            Timeout = timeout,
        });

    /// <summary>
    /// Runs <paramref name="program"/> (e.g. a published app's executable) with exactly <paramref name="environment"/>:
    /// nothing of this process's environment is inherited, as on a machine that has none of it.
    /// </summary>
    public static ProcessResult RunIsolated(string program, string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        ProcessRunner.Run(program, args, workingDirectory, new ProcessOptions
        {
            Environment = Nullable(environment),
            InheritEnvironment = false,
            Timeout = TimeSpan.FromMinutes(8),
        });

    private static Dictionary<string, string?> Nullable(IReadOnlyDictionary<string, string> environment) =>
        environment.ToDictionary(kv => kv.Key, kv => (string?)kv.Value, StringComparer.Ordinal);
}
