using System.Text.Json;

namespace LowRank.Build.Tests;

/// <summary>
/// Once per test run: packs LowRank.Build.Tasks (with the published tool), LowRank.Sdk, and the engine an app needs
/// to run a shipped model (LowRank.Core with LowRank.Common) into a local folder feed, and gives every fixture project a private NuGet packages folder, so a re-packed 0.1.0 is never shadowed
/// by an older extraction in ~/.nuget/packages. libtorch stays where eng/setup.sh restored it: the tool is pointed
/// at it with LOWRANK_LIBTORCH because the private packages folder does not hold it.
/// </summary>
public sealed class PackedFeed : IDisposable
{
    private readonly Lock gate = new();
    private readonly TempFolder folder = new("lrk-build-tests");

    public PackedFeed()
    {
        Feed = Path.Combine(Root, "feed");
        Packages = Path.Combine(Root, "packages");
        Directory.CreateDirectory(Feed);
        foreach (var project in new[] { "src/LowRank.Build.Tasks/LowRank.Build.Tasks.csproj", "sdk/LowRank.Sdk/LowRank.Sdk.csproj", "src/LowRank.Common/LowRank.Common.csproj", "src/LowRank.Core/LowRank.Core.csproj" })
        {
            var result = Dotnet.Run(RepoPaths.Root, BaseEnvironment(), "pack", project, "-c", "Release", "-o", Feed, "--nologo", "-nodeReuse:false");
            PackLog += result.Output;
            result.ShouldSucceed();
        }
    }

    public string Root => folder.Path;
    public string Feed { get; }
    public string Packages { get; }
    public string PackLog { get; } = "";

    /// <summary>The environment every fixture build runs with; <paramref name="cache"/> is its LOWRANK_CACHE.</summary>
    public Dictionary<string, string> Environment(string cache)
    {
        var env = BaseEnvironment();
        env["NUGET_PACKAGES"] = Packages;
        env["LOWRANK_CACHE"] = cache;
        if (LibTorchFolder() is { } libtorch) env["LOWRANK_LIBTORCH"] = libtorch;
        return env;
    }

    private static Dictionary<string, string> BaseEnvironment() => new()
    {
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
        ["DOTNET_NOLOGO"] = "1",
        ["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1",
        // Worker nodes that outlive a build would keep an old task assembly loaded for the next fixture.
        ["MSBUILDDISABLENODEREUSE"] = "1",
        ["LOWRANK_TOOL"] = "",
    };

    /// <summary>
    /// The machine's packages folder minus LowRank's own packages, as links (made once): a fallback folder wins over
    /// every feed for an exact version, so a LowRank.* 0.1.0 that someone restored there (e.g. by running a sample in
    /// the repo) would shadow the freshly packed one.
    /// </summary>
    public string EnginePackages
    {
        get
        {
            lock (gate)
            {
                var folder = Path.Combine(Root, "engine-packages");
                if (Directory.Exists(folder)) return folder;
                var temp = folder + ".tmp";
                Directory.CreateDirectory(temp);
                foreach (var package in Directory.EnumerateDirectories(MachinePackages))
                {
                    var name = Path.GetFileName(package);
                    if (!name.StartsWith("lowrank.", StringComparison.Ordinal)) Directory.CreateSymbolicLink(Path.Combine(temp, name), package);
                }
                Directory.Move(temp, folder);
                return folder;
            }
        }
    }

    /// <summary>The machine's NuGet packages folder (where eng/setup.sh restored TorchSharp and libtorch).</summary>
    public static string MachinePackages =>
        System.Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
            : Path.Combine(System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>The CPU libtorch restored into the machine's packages folder by eng/setup.sh, if any.</summary>
    public static string? LibTorchFolder()
    {
        var explicitFolder = System.Environment.GetEnvironmentVariable("LOWRANK_LIBTORCH");
        if (!string.IsNullOrEmpty(explicitFolder)) return explicitFolder;
        var package = Path.Combine(MachinePackages, "libtorch-cpu-linux-x64");
        if (!Directory.Exists(package)) return null;
        return Directory.EnumerateDirectories(package).Select(v => Path.Combine(v, "runtimes", "linux-x64", "native"))
            .FirstOrDefault(d => File.Exists(Path.Combine(d, "libtorch.so")));
    }

    /// <summary>The packaged tool, as restored into the private packages folder by the first fixture restore.</summary>
    public string PackagedTool => Path.Combine(Packages, "lowrank.build.tasks", "0.1.0", "tools", "net10.0", "any", "dotnet-lowrank.dll");

    public void Dispose() => folder.Dispose();

    public static JsonElement ParseLastJsonObject(string output)
    {
        var start = output.IndexOf('{', StringComparison.Ordinal);
        return JsonDocument.Parse(output[start..]).RootElement;
    }
}

[CollectionDefinition(Name)]
public sealed class PackedFeedTests : ICollectionFixture<PackedFeed>
{
    public const string Name = "packed feed";
}
