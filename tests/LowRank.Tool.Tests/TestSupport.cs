using System.Diagnostics;
using System.Text;

namespace LowRank.Tool.Tests;

/// <summary>The repository root (found by walking up to LowRank.Build.sln) and the data beside it.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Shared => Path.GetFullPath(Path.Combine(Root, "..", "shared"));

    public static string LlamaMoby => Path.Combine(Root, "models", "llama-moby");

    public static string NpmRoot => Path.Combine(Root, ".data", "npm");

    public static string MobyDick => Path.Combine(NpmRoot, "node_modules", "@stdlib", "datasets-moby-dick", "data", "data.txt");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LowRank.Build.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("LowRank.Build.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A fact that needs a file or folder relative to the repository root; skipped with the reason shown when it is absent.</summary>
public sealed class RequiresPathFactAttribute : FactAttribute
{
    public RequiresPathFactAttribute(string relativeToRoot, string hint)
    {
        var full = Path.GetFullPath(Path.Combine(RepoPaths.Root, relativeToRoot));
        if (!Directory.Exists(full) && !File.Exists(full)) Skip = $"{relativeToRoot} is not present ({full}): {hint}";
    }
}

/// <summary>A fresh folder under the system temp directory, deleted with everything in it on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lowrank-tool-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // cleaned by the OS later
        }
    }
}

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
        ["LOWRANK_NPM_DATA"] = RepoPaths.NpmRoot,
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
