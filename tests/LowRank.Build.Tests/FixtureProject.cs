namespace LowRank.Build.Tests;

/// <summary>
/// A throw-away folder with a nuget.config that sees only the packed feed, a cache folder, and project files
/// written by the test. Lines of a project file are counted by the test to check error locations.
/// </summary>
public sealed class FixtureProject : IDisposable
{
    private readonly PackedFeed feed;
    private readonly TempFolder folder;

    public FixtureProject(PackedFeed feed, string name = "fixture")
    {
        this.feed = feed;
        folder = TempFolder.Inside(feed.Root, name);
        Cache = Path.Combine(Root, "cache");
        File.WriteAllText(Path.Combine(Root, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="lowrank-test-feed" value="{feed.Feed}" />
              </packageSources>
            </configuration>
            """);
    }

    public string Root => folder.Path;
    public string Cache { get; }

    public Dictionary<string, string> Environment => feed.Environment(Cache);

    /// <summary>
    /// Lets restore take the engine's dependencies (TorchSharp, libtorch, …) from the machine's packages folder in place,
    /// as a fallback folder, while LowRank's own packages still come only from the packed feed.
    /// </summary>
    public void UseMachinePackagesAsFallback() =>
        File.WriteAllText(PathOf("nuget.config"), File.ReadAllText(PathOf("nuget.config")).Replace("</configuration>",
            $"  <fallbackPackageFolders>\n    <add key=\"machine\" value=\"{feed.EnginePackages}\" />\n  </fallbackPackageFolders>\n</configuration>", StringComparison.Ordinal));

    /// <summary>
    /// Adds a local folder feed (e.g. where a test will pack a model package) to the fixture's nuget.config. The folder
    /// is created: restore fails on a local source that does not exist (NU1301) whenever it has to search the feeds.
    /// </summary>
    public void AddFeed(string name, string folder)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(PathOf("nuget.config"), File.ReadAllText(PathOf("nuget.config"))
            .Replace("<clear />", $"<clear />\n    <add key=\"{name}\" value=\"{folder}\" />", StringComparison.Ordinal));
    }

    /// <summary>
    /// Adds an http source with its login in packageSourceCredentials (clear text, as CI writes it from a secret), as
    /// a disabled source: restore never searches it, and the remote cache still finds it by name.
    /// </summary>
    public void AddCredentialedFeed(string name, string url, string user, string password) =>
        File.WriteAllText(PathOf("nuget.config"), File.ReadAllText(PathOf("nuget.config"))
            .Replace("<clear />", $"<clear />\n    <add key=\"{name}\" value=\"{url}\" allowInsecureConnections=\"true\" />", StringComparison.Ordinal)
            .Replace("</configuration>", $"""
                  <disabledPackageSources>
                    <add key="{name}" value="true" />
                  </disabledPackageSources>
                  <packageSourceCredentials>
                    <{name}>
                      <add key="Username" value="{user}" />
                      <add key="ClearTextPassword" value="{password}" />
                    </{name}>
                  </packageSourceCredentials>
                </configuration>
                """, StringComparison.Ordinal));

    /// <summary>The fixture's environment with another LOWRANK_CACHE: a second machine that shares nothing local with the first.</summary>
    public Dictionary<string, string> EnvironmentWithCache(string cache) => feed.Environment(cache);

    public string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    public string Write(string relative, string content)
    {
        var path = Path.Combine(Root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    /// <summary>A console app that references LowRank.Build.Tasks and declares the given CompressedModel items.</summary>
    public string WriteApp(string folder, string items, string program = "System.Console.WriteLine(\"ok\");", string extraProperties = "")
    {
        Write(Path.Combine(folder, "Program.cs"), program);
        return Write(Path.Combine(folder, folder + ".csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <RootNamespace>Fixture</RootNamespace>
            {extraProperties}
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="LowRank.Build.Tasks" Version="0.1.0" />
              </ItemGroup>
              <ItemGroup>
            {items}
              </ItemGroup>
            </Project>
            """);
    }

    /// <summary>A console app in <paramref name="folder"/> (its project named after it) that references one package, nothing of LowRank's.</summary>
    public string WriteConsumer(string folder, string packageId, string version)
    {
        Write(Path.Combine(folder, "Program.cs"), "System.Console.WriteLine(\"consumer\");");
        return Write(Path.Combine(folder, folder + ".csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="{packageId}" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
    }

    /// <summary>A small source model folder: a config.json and a weights file of seeded bytes (only digested here, never loaded).</summary>
    public string WriteSourceModel(string folder, int seed = 1, int bytes = 64 * 1024)
    {
        var data = new byte[bytes];
        new Random(seed).NextBytes(data);
        Write(Path.Combine(folder, "config.json"), """{"model_type":"llama","hidden_size":64}""");
        var weights = Path.Combine(Root, folder, "model.safetensors");
        File.WriteAllBytes(weights, data);
        return Path.Combine(Root, folder);
    }

    public ProcessResult Run(string workingFolder, params string[] args) =>
        Dotnet.Run(Path.Combine(Root, workingFolder), Environment, args);

    /// <summary>The (1-based) line and column of the Include attribute on the line holding <paramref name="marker"/>.</summary>
    public static (int Line, int Column) Locate(string projectFile, string marker)
    {
        var lines = File.ReadAllLines(projectFile);
        var index = Array.FindIndex(lines, l => l.Contains(marker, StringComparison.Ordinal));
        Assert.True(index >= 0, $"{marker} not in {projectFile}");
        return (index + 1, lines[index].IndexOf("Include=", StringComparison.Ordinal) + 1);
    }

    /// <summary>
    /// <paramref name="output"/> holds a LowRank diagnostic placed at the Include of the item on the line holding
    /// <paramref name="marker"/>: <c>project(line,column): LowRank </c> then <paramref name="diagnostic"/>, a regular
    /// expression such as <c>error LRK4001: </c> or <c>warning LRK5007: cannot download .*</c>.
    /// </summary>
    public static void AssertDiagnosticAt(string output, string projectFile, string marker, string diagnostic)
    {
        var (line, column) = Locate(projectFile, marker);
        var pattern = $@"{System.Text.RegularExpressions.Regex.Escape(projectFile)}\({line},{column}\): LowRank {diagnostic}";
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(output, pattern), $"expected {projectFile}({line},{column}): LowRank {diagnostic}\n{output}");
    }

    public void Dispose() => folder.Dispose();
}
