using System.Text.Json;
using LowRank.Models;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>KV-cache decoding against the full pass, on each family's parity fixture (tests/fixtures/parity; the
/// logits themselves are checked against transformers by LowRank.Bench.Tests' HfParityTests).</summary>
public sealed class KvCacheTests
{
    public KvCacheTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    public static TheoryData<string> Fixtures() => ParityFixtures.All();

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
    public void Kv_cache_decoding_gives_the_full_sequence_logits(string name)
    {
        var folder = ParityFixtures.Folder(name);
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
