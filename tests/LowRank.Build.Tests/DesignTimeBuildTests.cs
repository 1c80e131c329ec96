using System.Text.Json;

namespace LowRank.Build.Tests;

/// <summary>
/// IDE builds: a design-time build (what Visual Studio, C# Dev Kit and Rider run on every edit) hashes no model,
/// reaches no feed and loads no LowRank task; it only adds the generated classes the last real build wrote. Proven by
/// making every such access fail: the source model is deleted, a <c>nuget:</c> item names a package no feed has, and
/// the remote cache is a live feed that records every request. And under .NET Framework MSBuild a real build stops
/// with LRK7008 instead of failing to load the tasks.
/// </summary>
[Collection(PackedFeedTests.Name)]
public class DesignTimeBuildTests(PackedFeed feed, ITestOutputHelper output)
{
    private static readonly string[] DesignTime =
        ["msbuild", "-nologo", "-t:Compile", "-p:DesignTimeBuild=true", "-p:BuildingProject=false", "-p:SkipCompilerExecution=true", "-p:ProvideCommandLineArgs=true", "-getItem:Compile"];

    [Fact]
    public void A_design_time_build_hashes_nothing_reaches_no_feed_and_adds_the_last_builds_generated_class()
    {
        using var server = new AuthenticatedFeed("user", "password", "key");
        using var fixture = new FixtureProject(feed, "ide");
        var model = fixture.WriteSourceModel("model");
        var remote = $"    <LowRankRemoteCache>{server.ServiceIndex}</LowRankRemoteCache>";
        fixture.WriteApp("app", """    <CompressedModel Include="../model" Ratio="0.5" OutputName="Tiny" />""", extraProperties: remote);
        CacheSeeding.Seed(fixture, CacheSeeding.ResolvedModel(fixture, "app"), model);
        fixture.Run("app", "build", "-nologo").ShouldSucceed();
        var generated = fixture.PathOf("app", "obj", "Debug", "net10.0", "lowrank", "Tiny.g.cs");
        Assert.True(File.Exists(generated));

        // Now every way to hash or download fails: the model is gone, and a new item names a package in no feed.
        Directory.Delete(model, recursive: true);
        fixture.WriteApp("app", """
                <CompressedModel Include="../model" Ratio="0.5" OutputName="Tiny" />
                <CompressedModel Include="nuget:Absent.Model/1.0.0" OutputName="Absent" />
            """, extraProperties: remote);
        var log = fixture.PathOf("design-time.log");
        var designTime = fixture.Run("app", [.. DesignTime, $"-flp:v=diag;logfile={log}"]).ShouldSucceed();
        var diagnostic = File.ReadAllText(log);
        output.WriteLine(string.Join('\n', diagnostic.Split('\n').Where(l => l.Contains("Target \"", StringComparison.Ordinal) && l.Contains("LowRank", StringComparison.Ordinal))));
        Assert.Contains(generated, CompileItems(designTime.Output));
        // (A diagnostic log names targets as "Name: (TargetId:N)".)
        Assert.Matches(@"Done building target ""_LowRankAddDesignTimeOutputs""", diagnostic);
        foreach (var target in new[] { "_LowRankCheckMSBuildRuntime", "_LowRankResolveCompressedModels", "_LowRankFetchFromRemoteCache", "_LowRankCompressMisses", "_LowRankAddCompressedModelOutputs" })
            Assert.DoesNotContain($"Done building target \"{target}\"", diagnostic, StringComparison.Ordinal);
        foreach (var task in new[] { "ResolveCompressedModels", "FetchRemoteCacheEntries", "CompressModel", "EmitCompressedModelOutputs", "ResolveModelPointers", "LinkModelFiles" })
            Assert.DoesNotContain($"Task \"{task}\"", diagnostic, StringComparison.Ordinal);
        Assert.DoesNotContain("LRK", designTime.Output, StringComparison.Ordinal);
        Assert.Empty(server.Requests);

        // The opt-out: nothing of LowRank's in a design-time build, not even the last generated class.
        var optOut = fixture.Run("app", [.. DesignTime, "-p:DisableLowRankDesignTimeBuild=true"]).ShouldSucceed();
        Assert.DoesNotContain(generated, CompileItems(optOut.Output));

        // The same project in a real build does read the model, so the design-time build above really skipped it.
        var real = fixture.Run("app", "build", "-nologo", "-p:LowRankCompressOnMiss=false");
        Assert.NotEqual(0, real.ExitCode);
        Assert.Contains("LRK2001", real.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Under_NET_Framework_MSBuild_a_real_build_stops_with_LRK7008_and_a_design_time_build_still_works()
    {
        using var fixture = new FixtureProject(feed, "netfx");
        fixture.WriteSourceModel("model");
        fixture.WriteApp("app", """    <CompressedModel Include="../model" Ratio="0.5" />""");
        // MSBuildRuntimeType is reserved; the targets read it through _LowRankMSBuildRuntimeType, which plays Visual Studio's msbuild.exe here.
        var real = fixture.Run("app", "build", "-nologo", "-p:_LowRankMSBuildRuntimeType=Full");
        Assert.NotEqual(0, real.ExitCode);
        Assert.Contains("error LRK7008: LowRank.Build.Tasks runs only under .NET MSBuild (dotnet build, dotnet msbuild); this is Full MSBuild", real.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("MSB4062", real.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("LRK0001", real.Output, StringComparison.Ordinal);
        fixture.Run("app", [.. DesignTime, "-p:_LowRankMSBuildRuntimeType=Full"]).ShouldSucceed();
    }

    [Fact]
    public void Design_time_build_never_compresses_and_a_miss_with_compression_off_is_an_error_at_the_item()
    {
        using var fixture = new FixtureProject(feed, "designtime");
        fixture.WriteSourceModel("model");
        var project = fixture.WriteApp("app", """    <CompressedModel Include="../model" Ratio="0.5" />""");
        fixture.Run("app", "restore", "-nologo").ShouldSucceed();
        // What IDEs run: a design-time build of the compile inputs.
        var designTime = fixture.Run("app", "msbuild", "-nologo", "-t:Compile", "-p:DesignTimeBuild=true", "-p:SkipCompilerExecution=true", "-p:ProvideCommandLineArgs=true");
        designTime.ShouldSucceed();
        Assert.DoesNotContain("compressing", designTime.Output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(fixture.Cache, ".tmp")) && Directory.EnumerateFileSystemEntries(Path.Combine(fixture.Cache, ".tmp")).Any());
        Assert.Empty(new LowRank.Cache.ModelCache(fixture.Cache).List());

        var offline = fixture.Run("app", "build", "-nologo", "-p:LowRankCompressOnMiss=false");
        Assert.NotEqual(0, offline.ExitCode);
        FixtureProject.AssertDiagnosticAt(offline.Output, project, "CompressedModel", "error LRK7004: ");
    }

    private static List<string> CompileItems(string output) =>
        PackedFeed.ParseLastJsonObject(output).GetProperty("Items").GetProperty("Compile").EnumerateArray()
            .Select(i => i.GetProperty("FullPath").GetString()!).ToList();
}
