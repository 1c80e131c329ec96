using System.Diagnostics;

namespace LowRank.Tool.Tests;

/// <summary>What a run of the tool produced: exit code and the two streams, line by line.</summary>
public sealed record ToolRun(int ExitCode, IReadOnlyList<string> Stdout, IReadOnlyList<string> Stderr)
{
    public string Describe() => $"exit {ExitCode}\nstdout:\n{string.Join('\n', Stdout)}\nstderr:\n{string.Join('\n', Stderr)}";

    /// <summary>Stderr lines that are not progress lines ("[stage …] …").</summary>
    public IReadOnlyList<string> Messages => Stderr.Where(l => !l.StartsWith('[')).ToList();
}

/// <summary>Runs the built dotnet-lowrank.dll as a separate process, as a user would (dotnet dotnet-lowrank.dll …).</summary>
public static class Tool
{
    public static string Dll { get; } = FindDll();

    private static string FindDll()
    {
        var beside = Path.Combine(AppContext.BaseDirectory, "dotnet-lowrank.dll");
        if (File.Exists(Path.Combine(AppContext.BaseDirectory, "dotnet-lowrank.runtimeconfig.json"))) return beside;
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        return Path.Combine(RepoPaths.Root, "src", "LowRank.Tool", "bin", configuration, "net10.0", "dotnet-lowrank.dll");
    }

    /// <summary>Environment for a tool run: no CI flag, no configuration from the machine (an empty XDG_CONFIG_HOME).</summary>
    public static Dictionary<string, string?> CleanEnvironment(string home) => new()
    {
        ["XDG_CONFIG_HOME"] = Path.Combine(home, "config"),
        ["LOWRANK_HOME"] = Path.Combine(home, "lowrank-home"),
        ["LOWRANK_CACHE"] = Path.Combine(home, "lowrank-cache"),
        ["LOWRANK_NPM_DATA"] = RepoPaths.NpmData,
        ["CI"] = null,
        ["DOTNET_NOLOGO"] = "1",
    };

    public static ToolRun Run(string workingDirectory, IReadOnlyDictionary<string, string?> environment, params string[] args) =>
        Run(workingDirectory, environment, args, onStdout: null, TimeSpan.FromMinutes(10));

    public static ToolRun Run(string workingDirectory, IReadOnlyDictionary<string, string?> environment, string[] args,
        Action<string, Process>? onStdout, TimeSpan timeout, string? executable = null)
    {
        var result = ProcessRunner.Run(executable ?? "dotnet", executable is null ? [Dll, .. args] : args, workingDirectory, new ProcessOptions
        {
            Environment = environment,
            DropInheritedPrefixes = ["LOWRANK_"],
            OnLine = onStdout is null ? null : (line, isError, process) => { if (!isError) onStdout(line, process); },
            Timeout = timeout,
        });
        return new ToolRun(result.ExitCode, result.Stdout, result.Stderr);
    }
}
