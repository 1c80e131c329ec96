using System.Diagnostics;

namespace LowRank.Build.Tasks;

/// <summary>How to start the compressor: <c>dotnet &lt;dll&gt;</c> or an executable (an installed global tool).</summary>
internal sealed record ToolCommand(string Path, bool IsManagedDll, string Source)
{
    public string Describe() => IsManagedDll ? $"dotnet {Path}" : Path;
}

/// <summary>
/// Finds dotnet-lowrank the Grpc.Tools way: the MSBuild property <c>LowRankToolPath</c>, else the environment
/// variable <c>LOWRANK_TOOL</c>, else the tool packaged with these tasks. The first one that is set is used; when
/// it does not exist, or none is set and nothing is packaged, the error names all three and what each held.
/// A path may be the dll, a folder holding it, or an executable (e.g. ~/.dotnet/tools/dotnet-lowrank).
/// </summary>
internal static class ToolLocator
{
    public const string PropertyName = "LowRankToolPath";
    public const string VariableName = "LOWRANK_TOOL";
    public const string DllName = "dotnet-lowrank.dll";

    public static ToolCommand Resolve(string? property, string? packagedDefault)
    {
        var variable = Environment.GetEnvironmentVariable(VariableName);
        var candidates = new (string Source, string? Value)[] { ($"property {PropertyName}", property), ($"environment variable {VariableName}", variable), ("the tool packaged with LowRank.Build.Tasks", packagedDefault) };
        foreach (var (source, value) in candidates)
        {
            if (string.IsNullOrWhiteSpace(value)) continue;
            var found = Probe(value.Trim());
            if (found is not null) return found with { Source = source };
            break; // the first one set wins; a wrong explicit setting is an error, not a silent fallback
        }
        var states = candidates.Select(c => string.IsNullOrWhiteSpace(c.Value) ? $"{c.Source} is not set" : $"{c.Source} = '{c.Value}' does not exist");
        throw new LrkException(ErrorCodes.ToolNotFound,
            $"the compressor dotnet-lowrank was not found: {string.Join("; ", states)}. Set {PropertyName} in the project or {VariableName} in the environment to {DllName}, its folder, or an installed dotnet-lowrank.");
    }

    private static ToolCommand? Probe(string path)
    {
        if (Directory.Exists(path))
        {
            var dll = System.IO.Path.Combine(path, DllName);
            return File.Exists(dll) ? new ToolCommand(System.IO.Path.GetFullPath(dll), true, "") : null;
        }
        if (!File.Exists(path)) return null;
        return new ToolCommand(System.IO.Path.GetFullPath(path), path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase), "");
    }

    /// <summary>The muxer that runs managed dlls: the one running this build (DOTNET_HOST_PATH), else dotnet on PATH.</summary>
    public static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)) return host;
        var name = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
        foreach (var folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = System.IO.Path.Combine(folder, name);
            if (File.Exists(candidate)) return candidate;
        }
        throw new LrkException(ErrorCodes.ToolNotFound, "cannot find the dotnet host to run dotnet-lowrank.dll (DOTNET_HOST_PATH is not set and dotnet is not on PATH)");
    }

    /// <summary>
    /// The tool's informational version (commit included), part of every cache key. For a dll it is read from the
    /// file; an executable is asked (<c>--version</c>) once per (path, size, time), remembered in <paramref name="stateFolder"/>.
    /// </summary>
    public static string Version(ToolCommand tool, string stateFolder)
    {
        if (tool.IsManagedDll)
        {
            var version = FileVersionInfo.GetVersionInfo(tool.Path).ProductVersion;
            if (!string.IsNullOrWhiteSpace(version)) return version.Trim();
        }
        var info = new FileInfo(tool.Path);
        var stamp = $"{tool.Path}|{info.Length}|{info.LastWriteTimeUtc.Ticks}";
        var memo = System.IO.Path.Combine(stateFolder, "tool-version.txt");
        if (File.Exists(memo))
        {
            var lines = File.ReadAllLines(memo);
            if (lines.Length == 2 && lines[0] == stamp) return lines[1];
        }
        var start = new ProcessStartInfo(tool.IsManagedDll ? DotnetHost() : tool.Path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (tool.IsManagedDll) start.ArgumentList.Add(tool.Path);
        start.ArgumentList.Add("--version");
        using var process = Process.Start(start) ?? throw new LrkException(ErrorCodes.ToolFailed, $"cannot start {tool.Describe()}");
        var output = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit(30_000);
        if (process.ExitCode != 0 || output.Length == 0) throw new LrkException(ErrorCodes.ToolFailed, $"{tool.Describe()} --version failed (exit {process.ExitCode})");
        Directory.CreateDirectory(stateFolder);
        File.WriteAllLines(memo, [stamp, output]);
        return output;
    }
}
