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

    private static Tensor Ids(ParityReference reference) =>
        tensor(reference.FlatIds, [reference.Batch, reference.SequenceLength], ScalarType.Int64);

    [Theory]
    [MemberData(nameof(ParityFixtures.All), MemberType = typeof(ParityFixtures))]
    public void Kv_cache_decoding_gives_the_full_sequence_logits(string name)
    {
        var folder = ParityFixtures.Folder(name);
        var reference = ParityReference.Read(folder);
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
