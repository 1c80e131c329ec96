using System.Text.Json;
using LowRank.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>
/// Our forward pass against HF transformers' logits: tests/fixtures/parity/&lt;family&gt;/ holds a small randomly
/// initialised model saved with save_pretrained and transformers' fp32 CPU logits for fixed ids
/// (tools/device/make_parity_fixtures.py). Tolerance 1e-4 max abs.
/// </summary>
public sealed class HfParityTests
{
    private const double Tolerance = 1e-4;
    private readonly ITestOutputHelper output;

    public HfParityTests(ITestOutputHelper output)
    {
        this.output = output;
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private static string FixturesRoot => Path.Combine(RepoPaths.Root, "tests", "fixtures", "parity");

    public static TheoryData<string> Fixtures()
    {
        var data = new TheoryData<string>();
        if (!Directory.Exists(FixturesRoot)) return data;
        foreach (var folder in Directory.EnumerateDirectories(FixturesRoot).Order(StringComparer.Ordinal))
        {
            if (File.Exists(Path.Combine(folder, "reference.json"))) data.Add(Path.GetFileName(folder));
        }
        return data;
    }

    [Fact]
    public void Every_supported_family_has_a_fixture()
    {
        var names = Directory.EnumerateDirectories(FixturesRoot).Where(f => File.Exists(Path.Combine(f, "reference.json"))).Select(Path.GetFileName).ToHashSet();
        Assert.Superset(new HashSet<string?> { "llama", "llama3", "mistral", "qwen2", "opt", "gpt2" }, names);
    }

    private sealed record Reference(long[][] InputIds, long[] Shape, float[] Logits);

    private static Reference ReadReference(string folder)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "reference.json")));
        var root = json.RootElement;
        return new Reference(
            root.GetProperty("input_ids").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetInt64()).ToArray()).ToArray(),
            root.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()).ToArray(),
            root.GetProperty("logits").EnumerateArray().Select(v => v.GetSingle()).ToArray());
    }

    private static Tensor Ids(Reference reference) =>
        tensor(reference.InputIds.SelectMany(r => r).ToArray(), [reference.InputIds.Length, reference.InputIds[0].Length], ScalarType.Int64);

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Logits_match_transformers(string name)
    {
        // Same check as `dotnet lowrank bench parity` (HfParity), which runs it on CUDA.
        var result = HfParity.Check(Path.Combine(FixturesRoot, name), DeviceRequest.Cpu);
        output.WriteLine($"{name}: max |ours - transformers| = {result.MaxAbsDiff:E3}");
        Assert.True(result.MaxAbsDiff < Tolerance, $"{name}: max |ours - transformers| = {result.MaxAbsDiff:E3} (tolerance {Tolerance:E0})");
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Kv_cache_decoding_gives_the_full_sequence_logits(string name)
    {
        var folder = Path.Combine(FixturesRoot, name);
        var reference = ReadReference(folder);
        using var loaded = ModelLoader.Load(folder, new ModelLoadOptions { Device = DeviceRequest.Cpu, LoadTokenizer = false });
        using var scope = NewDisposeScope();
        var ids = Ids(reference);
        var full = loaded.Model.Logits(ids);
        // A prefill of 5 tokens, then one token at a time (past Mistral's window of 8), then a chunk of 3.
        using var cache = loaded.Model.CreateCache();
        var length = ids.shape[1];
        var chunks = new List<Tensor> { loaded.Model.Logits(ids.narrow(1, 0, 5), cache) };
        long position = 5;
        for (; position < length - 3; position++) chunks.Add(loaded.Model.Logits(ids.narrow(1, position, 1), cache));
        chunks.Add(loaded.Model.Logits(ids.narrow(1, position, length - position), cache));
        var incremental = cat(chunks, 1);
        var maxAbs = (incremental - full).abs().max().item<float>();
        Assert.True(maxAbs < 1e-5, $"{name}: KV-cache logits differ from the full pass by {maxAbs:E3}");
    }
}
