using LowRank.Cache;
using LowRank.Compression;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace LowRank.Build.Tasks.Tests;

/// <summary>
/// <see cref="ResolveCompressedModels"/> and <see cref="CompressModel"/>'s command line in process, on a small model
/// folder: the item accepts exactly the spellings of <see cref="RequestSpellings"/> (the CLI's tests use the same
/// lists), spellings of one request give one key, and the command line renders what was parsed.
/// </summary>
public sealed class ResolveCompressedModelsTests : IDisposable
{
    private readonly TempFolder temp = new("lowrank-tasks");
    private readonly string project;

    public ResolveCompressedModelsTests()
    {
        temp.Write("model/config.json", """{"architectures": ["LlamaForCausalLM"]}""");
        temp.Write("model/model.safetensors", "not really weights: the task only digests the files");
        temp.Write("calib.txt", "Call me Ishmael.");
        project = temp.Write("app.csproj", """<Project><ItemGroup><CompressedModel Include="model" /></ItemGroup></Project>""");
    }

    public void Dispose() => temp.Dispose();

    private (ITaskItem? Resolved, TestBuildEngine Engine) Resolve(params (string Name, string Value)[] metadata)
    {
        var item = new TaskItem("model");
        item.SetMetadata("Method", "svd-llm");
        item.SetMetadata("Ratio", "0.4");
        item.SetMetadata("Calibration", "calib.txt");
        foreach (var (name, value) in metadata) item.SetMetadata(name, value);
        var engine = new TestBuildEngine(project);
        var task = TestResolveTask.Create(engine, item, temp);
        var ok = task.Execute();
        Assert.Equal(ok, engine.Errors.Count == 0);
        return (ok ? Assert.Single(task.ResolvedModels) : null, engine);
    }

    private string KeyOf(params (string Name, string Value)[] metadata)
    {
        var (resolved, engine) = Resolve(metadata);
        Assert.True(resolved is not null, string.Join("; ", engine.Errors.Select(e => $"{e.Code}: {e.Message}")));
        return resolved.GetMetadata("Key");
    }

    private string ErrorOf(params (string Name, string Value)[] metadata)
    {
        var (resolved, engine) = Resolve(metadata);
        Assert.Null(resolved);
        var error = Assert.Single(engine.Errors);
        Assert.Equal(project, error.File);
        Assert.True(error.LineNumber > 0, "the error points at the item's line");
        return error.Code;
    }

    [Fact]
    public void Method_spellings_of_one_method_give_one_key_and_unknown_ones_fail()
    {
        foreach (var (spelling, canonical) in RequestSpellings.Methods)
        {
            Assert.Equal(KeyOf(("Method", canonical)), KeyOf(("Method", spelling)));
            Assert.Equal(canonical, Resolve(("Method", spelling)).Resolved!.GetMetadata("Method"));
        }
        Assert.Equal(RequestSpellings.Methods.Select(m => m.Canonical).Distinct().Count(),
            RequestSpellings.Methods.Select(m => KeyOf(("Method", m.Canonical))).Distinct().Count());
        foreach (var bad in RequestSpellings.BadMethods) Assert.Equal(ErrorCodes.UnknownMethod, ErrorOf(("Method", bad)));
    }

    [Fact]
    public void Factor_dtype_spellings_of_one_dtype_give_one_key_and_unknown_ones_fail()
    {
        foreach (var (spelling, canonical) in RequestSpellings.FactorDtypes)
            Assert.Equal(KeyOf(("FactorDtype", canonical)), KeyOf(("FactorDtype", spelling)));
        Assert.NotEqual(KeyOf(("FactorDtype", "fp16")), KeyOf());
        foreach (var bad in RequestSpellings.BadFactorDtypes) Assert.Equal(ErrorCodes.BadItem, ErrorOf(("FactorDtype", bad)));
    }

    [Fact]
    public void Ratios_are_read_with_a_dot_in_every_culture_and_checked_against_the_rule()
    {
        var culture = System.Globalization.CultureInfo.CurrentCulture;
        try
        {
            System.Globalization.CultureInfo.CurrentCulture = new System.Globalization.CultureInfo("de-DE");
            foreach (var (spelling, value) in RequestSpellings.Ratios)
                Assert.Equal(KeyOf(("Ratio", CompressionRatio.Format(value))), KeyOf(("Ratio", spelling)));
            foreach (var bad in RequestSpellings.BadRatios.Append("")) Assert.Equal(ErrorCodes.BadRatio, ErrorOf(("Ratio", bad)));
        }
        finally
        {
            System.Globalization.CultureInfo.CurrentCulture = culture;
        }
    }

    [Fact]
    public void Seeds_samples_and_sequence_lengths_have_the_clis_ranges_and_one_key_per_value()
    {
        static string Number(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (spelling, value) in RequestSpellings.Seeds)
            Assert.Equal(KeyOf(("Seed", Number(value))), KeyOf(("Seed", spelling)));
        Assert.NotEqual(KeyOf(("Seed", "1")), KeyOf(("Seed", "2")));
        foreach (var bad in RequestSpellings.BadSeeds) Assert.Equal(ErrorCodes.BadItem, ErrorOf(("Seed", bad)));
        foreach (var name in new[] { "Samples", "SeqLen" })
        {
            foreach (var (spelling, value) in RequestSpellings.Counts)
                Assert.Equal(KeyOf((name, Number(value))), KeyOf((name, spelling)));
            foreach (var bad in RequestSpellings.BadCounts) Assert.Equal(ErrorCodes.BadItem, ErrorOf((name, bad)));
        }
    }

    /// <summary>Device is checked at the item's line with the tool's code (it used to reach the tool unchecked); every
    /// spelling gives the one key (hardware is not the result) and the command line carries the canonical spelling.</summary>
    [Fact]
    public void Device_spellings_are_the_tools_and_leave_the_key_alone()
    {
        var key = KeyOf();
        foreach (var (spelling, canonical) in RequestSpellings.Devices)
        {
            var (resolved, _) = Resolve(("Device", spelling));
            Assert.NotNull(resolved);
            Assert.Equal(key, resolved.GetMetadata("Key"));
            Assert.Contains($"--device {canonical} ", CompressModel.CommandLine(resolved, "/tmp/x"));
        }
        foreach (var bad in RequestSpellings.BadDevices) Assert.Equal(ErrorCodes.UnknownDevice, ErrorOf(("Device", bad)));
    }

    [Fact]
    public void The_key_is_the_requests_key_and_the_command_line_renders_the_request()
    {
        var (resolved, _) = Resolve(("Method", "SVD_LLM"), ("FactorDtype", "half"), ("Samples", "16"), ("Seed", "7"), ("Device", "CPU"),
            ("ToolArguments", "--set AdaSvdIterations=3"), ("Format", "onnx"), ("CalibrationStart", "2"));
        Assert.NotNull(resolved);
        var key = CacheKey.Parse(resolved.GetMetadata("KeyText"));
        Assert.Equal(resolved.GetMetadata("Key"), key.Hash);
        Assert.Equal("svd-llm", key.GetString("method"));
        Assert.Equal("fp16", key.GetString("factorDtype"));
        Assert.Equal("7", key.GetString("seed"));
        Assert.Equal("onnx", key.GetString("formats"));

        var source = resolved.GetMetadata("SourceModel");
        var calibration = temp.File("calib.txt");
        var tool = resolved.GetMetadata("ToolPath");
        Assert.Equal(
            $"{tool} compress {source} --method svd-llm --ratio 0.4 --calib {calibration} --calib-start 2 --samples 16 --seed 7 --device cpu " +
            "--factor-dtype fp16 --format onnx --set AdaSvdIterations=3 --out /tmp/x --progress jsonl --no-config",
            CompressModel.CommandLine(resolved, "/tmp/x"));
    }

    /// <summary>The task resolves hub ids with the engine's resolver: org/name@revision and a lone snapshot without refs
    /// (both failed in MSBuild before the two resolvers were one).</summary>
    [Fact]
    public void Hub_ids_take_a_revision_and_a_lone_snapshot_without_refs()
    {
        var hub = temp.Combine("hub");
        var commit = new string('a', 40);
        var tagged = new string('b', 40);
        var lone = temp.Combine("hub", "models--acme--copied", "snapshots", commit);
        Directory.CreateDirectory(lone);
        var v2 = temp.Combine("hub", "models--acme--tiny", "snapshots", tagged);
        Directory.CreateDirectory(v2);
        temp.Write("hub/models--acme--tiny/refs/v2", tagged);
        var saved = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", hub);
            Assert.Equal(lone, ModelSource.Resolve("acme/copied", temp.Path, null));
            Assert.Equal(v2, ModelSource.Resolve("acme/tiny@v2", temp.Path, null));
            Assert.Equal(v2, ModelSource.Resolve("acme/tiny", temp.Path, "v2"));
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", saved);
        }
    }
}
