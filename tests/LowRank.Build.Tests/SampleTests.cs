using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using LowRank.Cache;

namespace LowRank.Build.Tests;

/// <summary>
/// Builds the samples as CI must, from copies in a fixture folder and against the freshly packed feed only (the
/// engine's own dependencies, TorchSharp and libtorch, come from the machine's packages folder as a fallback
/// folder, used in place): samples/GenerateText compresses the built-in default model, ships it in bin/ and
/// generates text with it; samples/ModelPackage packs a versioned model package, once carrying the files and once,
/// over a small LowRankPackageMaxSize, as a pointer package; consumers get the weights in bin/ from each.
/// </summary>
[Collection(PackedFeedTests.Name)]
public class SampleTests(PackedFeed feed, ITestOutputHelper output)
{
    private const string Prompt = "Call me Ishmael.";

    private static void CopySample(FixtureProject fixture, string name)
    {
        var from = Path.Combine(RepoPaths.Root, "samples", name);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(from, file);
            if (relative.StartsWith("bin", StringComparison.Ordinal) || relative.StartsWith("obj", StringComparison.Ordinal)) continue;
            fixture.Write(Path.Combine(name, relative), File.ReadAllText(file));
        }
    }

    private static string Sha256(string file) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));

    private static string RepoRoot => "-p:LowRankRepoRoot=" + RepoPaths.Root + "/";

    /// <summary>The packaged tool's greedy continuation of <see cref="Prompt"/> by <paramref name="model"/>.</summary>
    private string ToolGenerate(FixtureProject fixture, string model)
    {
        var result = Dotnet.Run(fixture.Root, fixture.Environment, feed.PackagedTool, "generate", model, "--prompt", Prompt,
            "--max-new-tokens", "48", "--device", "cpu", "--json", "--progress", "none").ShouldSucceed();
        return PackedFeed.ParseLastJsonObject(result.Output).GetProperty("text").GetString()!;
    }

    [RequiresCompressFact]
    public void GenerateText_builds_from_packages_and_generates_text_with_the_compressed_model_it_ships()
    {
        using var fixture = new FixtureProject(feed, "gentext");
        fixture.UseMachinePackagesAsFallback();
        CopySample(fixture, "GenerateText");
        var build = fixture.Run("GenerateText", "build", "-nologo", RepoRoot).ShouldSucceed();
        Assert.Contains("LowRank: compressing", build.Output, StringComparison.Ordinal);
        var bin = fixture.PathOf("GenerateText", "bin", "Debug", "net10.0");
        var shipped = Path.Combine(bin, "models", "Moby");
        Assert.True(File.Exists(Path.Combine(shipped, "model.safetensors")), build.Output);

        var run = Dotnet.Run(fixture.PathOf("GenerateText"), fixture.Environment, Path.Combine(bin, "GenerateText.dll")).ShouldSucceed();
        output.WriteLine(run.Output);
        var lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // The generated class lists every file the build ships (factors, config, tokenizer, model card, licence files).
        var shippedFiles = Directory.GetFiles(shipped, "*", SearchOption.AllDirectories).Length;
        Assert.StartsWith($"Moby: svd at ratio 0.3, {shippedFiles} files in models/Moby", lines[0], StringComparison.Ordinal);
        Assert.Equal("loaded LlamaForCausalLM: 4 blocks, 28 low-rank linears, on cpu", lines[1]);
        var text = lines[2];
        Assert.StartsWith(Prompt + " ", text, StringComparison.Ordinal);
        Assert.True(text.Length > Prompt.Length + 40, $"too little text generated: {text}");

        // The same greedy continuation as the tool gives for the shipped folder, and not the uncompressed model's.
        Assert.Equal(ToolGenerate(fixture, shipped), text);
        Assert.NotEqual(ToolGenerate(fixture, TestModels.SourceModel!), text);

        // Published with LowRankPublishLibTorch=true, the app carries the CPU libtorch and runs where there is no NuGet
        // packages folder (nor LOWRANK_LIBTORCH); without libtorch it stops with the coded line and exit code 1.
        var publish = fixture.PathOf("GenerateText", "publish");
        fixture.Run("GenerateText", "publish", "-nologo", RepoRoot, "-r", "linux-x64", "--self-contained", "false",
            "-p:LowRankPublishLibTorch=true", "-o", publish).ShouldSucceed();
        Assert.True(File.Exists(Path.Combine(publish, "libtorch_cpu.so")), "libtorch_cpu.so was not published");
        Directory.CreateDirectory(fixture.PathOf("empty-home"));
        Directory.CreateDirectory(fixture.PathOf("empty-packages"));
        var bare = new Dictionary<string, string>(fixture.Environment)
        {
            ["HOME"] = fixture.PathOf("empty-home"),
            ["NUGET_PACKAGES"] = fixture.PathOf("empty-packages"),
            ["LOWRANK_LIBTORCH"] = "",
        };
        var published = Dotnet.Run(publish, bare, Path.Combine(publish, "GenerateText.dll")).ShouldSucceed();
        Assert.Equal(text, published.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[2]);
        foreach (var library in Directory.EnumerateFiles(publish, "libtorch*.so")) File.Delete(library);
        var withoutLibTorch = Dotnet.Run(publish, bare, Path.Combine(publish, "GenerateText.dll"));
        Assert.Equal(1, withoutLibTorch.ExitCode);
        Assert.Contains($"error {ErrorCodes.LibTorchNotFound}: no libtorch found", withoutLibTorch.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", withoutLibTorch.Output, StringComparison.Ordinal);
    }

    /// <summary>
    /// Cost: one compression and ONNX export of llama-moby (about 25 s), one trimmed self-contained publish (about a
    /// minute on 2 cores; ILLink is most of it) and two one-second runs of the published app.
    /// </summary>
    [RequiresCompressFact]
    public void GenerateTextOnnx_publishes_a_self_contained_app_that_runs_the_onnx_model_with_no_sdk_packages_folder_or_libtorch()
    {
        using var fixture = new FixtureProject(feed, "gentextonnx");
        fixture.UseMachinePackagesAsFallback(); // ONNX Runtime (GenAI), the linux-x64 runtime pack and ILLink, restored by eng/setup.sh
        CopySample(fixture, "GenerateTextOnnx");
        var publish = fixture.PathOf("GenerateTextOnnx", "publish");
        var published = fixture.Run("GenerateTextOnnx", "publish", "-nologo", RepoRoot, "-c", "Release", "-r", "linux-x64", "-o", publish).ShouldSucceed();
        Assert.Contains("LowRank: compressing", published.Output, StringComparison.Ordinal);
        Assert.Contains("[export] writing model.onnx", published.Output, StringComparison.Ordinal);

        // Format="onnx" ships the export alone, under its own cache key.
        var entry = Assert.Single(new ModelCache(fixture.Cache).List());
        Assert.Equal("onnx", entry.Record.KeyFields["formats"]?.GetValue<string>());
        var shipped = Path.Combine(publish, "models", "Moby");
        foreach (var name in new[] { "model.onnx", "genai_config.json", "tokenizer.json" })
            Assert.True(File.Exists(Path.Combine(shipped, name)), $"{name} was not published");
        Assert.False(File.Exists(Path.Combine(shipped, "model.safetensors")), "Format=onnx should not ship the safetensors artifact");

        // No TorchSharp, no libtorch, no Windows natives; the size without the model is what the README reports.
        var files = Directory.EnumerateFiles(publish, "*", SearchOption.AllDirectories).Where(f => !f.StartsWith(shipped, StringComparison.Ordinal)).ToList();
        Assert.DoesNotContain(files, f => Path.GetFileName(f).Contains("torch", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(files, f => Path.GetFileName(f).StartsWith("onnxruntime", StringComparison.Ordinal) && f.EndsWith(".dll", StringComparison.Ordinal));
        var bytes = files.Sum(f => new FileInfo(f).Length);
        output.WriteLine($"published GenerateTextOnnx: {bytes:N0} bytes in {files.Count} files without the model ({Directory.EnumerateFiles(shipped).Sum(f => new FileInfo(f).Length):N0} bytes of model)");
        Assert.True(bytes < 90_000_000, $"the published app grew to {bytes:N0} bytes (73.6 MB when this test was written)");

        // A machine with no .NET SDK on PATH, no NuGet packages folder, an empty HOME: nothing but the folder.
        var bare = new Dictionary<string, string>
        {
            ["HOME"] = fixture.PathOf("empty-home"),
            ["NUGET_PACKAGES"] = fixture.PathOf("empty-packages"),
            ["PATH"] = fixture.PathOf("empty-bin"),
        };
        foreach (var folder in new[] { "empty-home", "empty-packages", "empty-bin" }) Directory.CreateDirectory(fixture.PathOf(folder));
        var run = Dotnet.RunIsolated(Path.Combine(publish, "GenerateTextOnnx"), publish, bare).ShouldSucceed();
        output.WriteLine(run.Output);
        var lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.StartsWith("Moby: svd at ratio 0.3 as onnx, ", lines[0], StringComparison.Ordinal);
        Assert.Equal("ONNX Runtime GenAI, 48 new tokens:", lines[1]);
        Assert.StartsWith(Prompt + " ", lines[2], StringComparison.Ordinal);
        Assert.True(lines[2].Length > Prompt.Length + 40, $"too little text generated: {lines[2]}");

        // A model file changed after the build is refused with its code, not run.
        // (Deleted and rewritten, not appended to: the published file is a hard link to the read-only cache file.)
        var config = Path.Combine(shipped, "genai_config.json");
        var text = File.ReadAllText(config);
        File.Delete(config);
        File.WriteAllText(config, text + " ");
        var tampered = Dotnet.RunIsolated(Path.Combine(publish, "GenerateTextOnnx"), publish, bare);
        Assert.Equal(3, tampered.ExitCode);
        Assert.Contains($"error {ErrorCodes.HashMismatch}:", tampered.Output, StringComparison.Ordinal);
    }

    [RequiresCompressFact]
    public void ModelPackage_packs_a_package_with_the_files_and_over_the_size_limit_a_pointer_package_both_consumed_from_a_folder_feed()
    {
        using var fixture = new FixtureProject(feed, "modelpkg");
        CopySample(fixture, "ModelPackage");
        var packages = fixture.PathOf("out");
        fixture.AddFeed("models", packages);

        // 1. The files layout: the package carries the compressed files.
        fixture.Run("ModelPackage", "pack", "-nologo", RepoRoot, "-o", packages).ShouldSucceed();
        var full = Path.Combine(packages, "Moby.Svd30.1.0.0.nupkg");
        using (var zip = ZipFile.OpenRead(full))
        {
            var names = zip.Entries.Select(e => e.FullName).ToList();
            Assert.Contains("lowrank/moby-svd30/model.safetensors", names);
            Assert.Contains("lowrank/manifests/moby-svd30.json", names);
            Assert.Contains("buildTransitive/Moby.Svd30.targets", names);
        }
        var entry = Assert.Single(new ModelCache(fixture.Cache).List());
        var weights = entry.Record.Files.Single(f => f.Path == "model.safetensors");

        fixture.WriteConsumer("consumer", "Moby.Svd30", "1.0.0");
        fixture.Run("consumer", "build", "-nologo").ShouldSucceed();
        Assert.Equal(weights.Sha256, Sha256(fixture.PathOf("consumer", "bin", "Debug", "net10.0", "models", "moby-svd30", "model.safetensors")));

        // 2. Over LowRankPackageMaxSize the package is a pointer: the entry goes to the remote cache feed, the package
        //    holds only the manifest and targets, and depends on LowRank.Build.Tasks, which fetches the entry.
        var remote = fixture.PathOf("remote-cache");
        var pack = fixture.Run("ModelPackage", "pack", "-nologo", RepoRoot, "-o", packages, "-p:Version=1.0.1", "-p:LowRankPackageMaxSize=64KB", $"-p:LowRankRemoteCache={remote}").ShouldSucceed();
        Assert.Contains("is a pointer package", pack.Output, StringComparison.Ordinal);
        var pointer = Path.Combine(packages, "Moby.Svd30.1.0.1.nupkg");
        Assert.True(new FileInfo(pointer).Length < 64 * 1024, $"a pointer package should be small, is {new FileInfo(pointer).Length} bytes");
        using (var zip = ZipFile.OpenRead(pointer))
        {
            var names = zip.Entries.Select(e => e.FullName).ToList();
            Assert.DoesNotContain(names, n => n.StartsWith("lowrank/moby-svd30/", StringComparison.Ordinal));
            using var manifest = JsonDocument.Parse(zip.GetEntry("lowrank/manifests/moby-svd30.json")!.Open());
            Assert.Equal("pointer", manifest.RootElement.GetProperty("layout").GetString());
            Assert.Equal(entry.Key, manifest.RootElement.GetProperty("key").GetString());
            using var nuspec = new StreamReader(zip.GetEntry("Moby.Svd30.nuspec")!.Open());
            Assert.Contains("id=\"LowRank.Build.Tasks\"", nuspec.ReadToEnd(), StringComparison.Ordinal);
        }
        Assert.True(File.Exists(Path.Combine(remote, $"LowRank.Cache.{entry.Key}.1.0.0.nupkg")));

        // A consumer on a machine with an empty cache gets the weights in bin/ from the remote cache, verified.
        fixture.WriteConsumer("pointer-consumer", "Moby.Svd30", "1.0.1");
        var otherMachine = fixture.EnvironmentWithCache(fixture.PathOf("cache-consumer"));
        var consumed = Dotnet.Run(fixture.PathOf("pointer-consumer"), otherMachine, "build", "-nologo").ShouldSucceed();
        Assert.Contains("LowRank: fetched model 'moby-svd30' of package Moby.Svd30 1.0.1", consumed.Output, StringComparison.Ordinal);
        var fetched = fixture.PathOf("pointer-consumer", "bin", "Debug", "net10.0", "models", "moby-svd30", "model.safetensors");
        Assert.Equal(weights.Sha256, Sha256(fetched));
        Assert.Empty(ModelCache.Verify(Assert.Single(new ModelCache(fixture.PathOf("cache-consumer")).List())));

        var again = Dotnet.Run(fixture.PathOf("pointer-consumer"), otherMachine, "build", "-nologo").ShouldSucceed();
        Assert.DoesNotContain("LowRank: fetched", again.Output, StringComparison.Ordinal);
        Dotnet.Run(fixture.PathOf("pointer-consumer"), otherMachine, "clean", "-nologo").ShouldSucceed();
        Assert.False(File.Exists(fetched), "dotnet clean should remove a pointer package's model files from bin/");
    }
}
