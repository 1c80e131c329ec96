using System.Diagnostics;
using System.Text;

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
        var start = new ProcessStartInfo(executable ?? "dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        if (executable is null) start.ArgumentList.Add(Dll);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("LOWRANK_", StringComparison.Ordinal)).ToList()) start.Environment.Remove(name);
        foreach (var (name, value) in environment)
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        var stdout = new List<string>();
        var stderr = new List<string>();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stdout) stdout.Add(e.Data);
            onStdout?.Invoke(e.Data, process);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stderr) stderr.Add(e.Data);
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new TimeoutException($"dotnet-lowrank {string.Join(' ', args)} ran over {timeout}");
        }
        process.WaitForExit();
        lock (stdout) lock (stderr) return new ToolRun(process.ExitCode, stdout.ToList(), stderr.ToList());
    }
}
