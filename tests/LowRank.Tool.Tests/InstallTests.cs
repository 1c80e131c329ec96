namespace LowRank.Tool.Tests;

/// <summary>
/// The fresh-machine install path: <c>dotnet pack</c> → <c>dotnet tool install --tool-path</c> (a private folder, so the
/// machine's global tools are left alone; users install with <c>-g</c>) → the installed <c>dotnet-lowrank</c> runs.
/// The package does not carry libtorch (about 600 MB): an installed tool that cannot find one says how to get it.
/// </summary>
public sealed class InstallTests : IDisposable
{
    private readonly TempFolder temp = new();
    private readonly ITestOutputHelper output;

    public InstallTests(ITestOutputHelper output)
    {
        this.output = output;
    }

    public void Dispose() => temp.Dispose();

    private ProcessResult Run(string executable, IReadOnlyDictionary<string, string?> environment, params string[] args) =>
        ProcessRunner.Run(executable, args, temp.Path, new ProcessOptions { Environment = environment, DropInheritedPrefixes = ["LOWRANK_"] });

    [Fact]
    public void Packed_tool_installs_into_a_tool_path_and_runs()
    {
        var feed = temp.File("feed");
        var tools = temp.File("tools");
        // A private packages folder: a LowRank.Tool 0.1.0 restored earlier on this machine must not stand in for the new pack.
        var env = new Dictionary<string, string?>
        {
            ["NUGET_PACKAGES"] = temp.File("packages"),
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_NOLOGO"] = "1",
            ["XDG_CONFIG_HOME"] = temp.File("config"),
            ["LOWRANK_HOME"] = temp.File("lowrank-home"),
        };
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        // The pack restores the checkout's own obj/ folders: with the private packages folder there, they would point into
        // this test's temp folder once it is deleted, and the next build of the checkout would fail.
        var pack = Run("dotnet", new Dictionary<string, string?>(env) { ["NUGET_PACKAGES"] = Environment.GetEnvironmentVariable("NUGET_PACKAGES") }, "pack", Path.Combine(RepoPaths.Root, "src", "LowRank.Tool", "LowRank.Tool.csproj"), "-c", configuration, "-o", feed, "--nologo", "-nodeReuse:false");
        Assert.True(pack.ExitCode == 0, pack.Output);
        Assert.Single(Directory.GetFiles(feed, "LowRank.Tool.*.nupkg"));

        var install = Run("dotnet", env, "tool", "install", "--tool-path", tools, "--add-source", feed, "LowRank.Tool", "--version", "0.1.0");
        Assert.True(install.ExitCode == 0, install.Output);
        var shim = Path.Combine(tools, "dotnet-lowrank");
        Assert.True(File.Exists(shim), install.Output);

        var help = Run(shim, env, "--help");
        Assert.True(help.ExitCode == 0, help.Output);
        Assert.Contains("compress", help.Output, StringComparison.Ordinal);
        Assert.Contains("demo", help.Output, StringComparison.Ordinal);

        // The built-in model travels with the tool, so `demo` needs no checkout.
        Assert.Contains(Directory.GetFiles(tools, "config.json", SearchOption.AllDirectories),
            f => f.Replace('\\', '/').Contains("/models/llama-moby/", StringComparison.Ordinal));

        // No libtorch anywhere the tool looks: one clear error naming every way to get one, and doctor fails its check.
        var bare = new Dictionary<string, string?>(env) { ["NUGET_PACKAGES"] = temp.File("empty-packages"), ["LOWRANK_LIBTORCH"] = null, ["PATH"] = "/usr/bin:/bin" };
        var noTorch = Run(shim, bare, "doctor", "--device", "cpu");
        output.WriteLine(noTorch.Output);
        Assert.Equal(ExitCodes.CheckFailed, noTorch.ExitCode);
        Assert.Contains(ErrorCodes.LibTorchNotFound, noTorch.Output, StringComparison.Ordinal);
        foreach (var hint in new[] { "LOWRANK_LIBTORCH", "pip install torch", "libtorch-cpu-linux-x64" })
            Assert.Contains(hint, noTorch.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", noTorch.Output, StringComparison.Ordinal);

        // Pointed at a libtorch, the installed tool passes its self-test.
        var libtorch = LibTorchFolder();
        if (libtorch is not null)
        {
            var withTorch = Run(shim, new Dictionary<string, string?>(bare) { ["LOWRANK_LIBTORCH"] = libtorch }, "doctor", "--device", "cpu");
            Assert.True(withTorch.ExitCode == 0, withTorch.Output);
        }
        else
        {
            output.WriteLine("libtorch-cpu-linux-x64 is not in the NuGet folder (run eng/setup.sh); the installed tool's self-test was not run");
        }
    }

    private static string? LibTorchFolder()
    {
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var package = Path.Combine(packages, "libtorch-cpu-linux-x64");
        return Directory.Exists(package)
            ? Directory.EnumerateDirectories(package).Select(v => Path.Combine(v, "runtimes", "linux-x64", "native")).FirstOrDefault(d => File.Exists(Path.Combine(d, "libtorch.so")))
            : null;
    }
}
