using LowRank.Data;
using LowRank.Torch;

namespace LowRank.Tests.Data;

public sealed class CalibrationSamplerTests
{
    public CalibrationSamplerTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private static readonly SourceText Source = new()
    {
        Text = "x",
        Location = "test.txt",
        Format = "plain",
        Description = "test.txt: plain text; 1 bytes",
        Sha256 = SourceText.Sha256Hex("x"),
        Bytes = 1,
        TotalBytes = 1,
    };

    private static TokenizedText Stream(int n, int? bos = 1) => new(
        [.. Enumerable.Range(0, n).Select(i => 100 + i)],
        new TokenProtocolRecord { Name = "stream", Description = "test", Bos = bos is not null, BosId = bos });

    [Fact]
    public void Samples_are_windows_at_the_documented_random_offsets_with_bos_first()
    {
        using var set = CalibrationSampler.Sample(Stream(1000), Source, new CalibrationOptions { Samples = 8, SeqLen = 16, Seed = 7 });
        Assert.Equal([8L, 16L], set.Tokens.shape);
        Assert.Equal(TorchSharp.torch.int64, set.Tokens.dtype);
        var data = set.Tokens.data<long>().ToArray();
        var rng = new Random(7);
        for (var i = 0; i < 8; i++)
        {
            var start = rng.Next(0, 1000 - 16 + 1);
            Assert.Equal(1, data[i * 16]);
            for (var j = 1; j < 16; j++) Assert.Equal(100 + start + j, data[i * 16 + j]);
        }
        Assert.True(set.Protocol.Bos);
        Assert.Equal(1, set.Protocol.BosId);
        Assert.Equal(1000, set.Protocol.StreamTokens);
        Assert.Equal(Source.Sha256, set.Protocol.SourceSha256);
    }

    [Fact]
    public void Same_seed_same_samples_and_digest_other_seed_differs()
    {
        var options = new CalibrationOptions { Samples = 32, SeqLen = 64, Seed = 3 };
        using var a = CalibrationSampler.Sample(Stream(5000), Source, options);
        using var b = CalibrationSampler.Sample(Stream(5000), Source, options);
        using var c = CalibrationSampler.Sample(Stream(5000), Source, options with { Seed = 4 });
        Assert.Equal(a.Tokens.data<long>().ToArray(), b.Tokens.data<long>().ToArray());
        Assert.Equal(a.Protocol, b.Protocol);
        Assert.Equal(a.Protocol.Digest(), b.Protocol.Digest());
        Assert.NotEqual(a.Protocol.TokensSha256, c.Protocol.TokensSha256);
        Assert.NotEqual(a.Protocol.Digest(), c.Protocol.Digest());
        Assert.Matches("^[0-9a-f]{64}$", a.Protocol.Digest());
    }

    [Fact]
    public void Digest_changes_with_the_source_and_the_protocol()
    {
        var options = new CalibrationOptions { Samples = 4, SeqLen = 8 };
        using var a = CalibrationSampler.Sample(Stream(100), Source, options);
        using var otherText = CalibrationSampler.Sample(Stream(100), Source with { Sha256 = SourceText.Sha256Hex("y") }, options);
        using var noBos = CalibrationSampler.Sample(Stream(100), Source, options with { Bos = false });
        Assert.NotEqual(a.Protocol.Digest(), otherText.Protocol.Digest());
        Assert.NotEqual(a.Protocol.Digest(), noBos.Protocol.Digest());
        Assert.False(noBos.Protocol.Bos);
        Assert.NotEqual(1, noBos.Tokens[0, 0].item<long>());
    }

    [Fact]
    public void Too_little_text_is_data_too_short_with_the_numbers()
    {
        var e = Assert.Throws<LrkException>(() => CalibrationSampler.Sample(Stream(300), Source, new CalibrationOptions { Samples = 256, SeqLen = 2048 }));
        Assert.Equal(ErrorCodes.DataTooShort, e.Code);
        Assert.Contains("300 tokens", e.Message);
        Assert.Contains("2,048", e.Message);
    }

    [Fact]
    public void Default_length_is_2048_or_the_model_context()
    {
        var config = new LowRank.Models.ModelConfig
        {
            Family = LowRank.Models.ModelFamily.Llama, Architecture = "x", HiddenSize = 1, IntermediateSize = 1, NumLayers = 1,
            NumHeads = 1, NumKvHeads = 1, HeadDim = 1, VocabSize = 2, MaxPositions = 512,
        };
        Assert.Equal(512, CalibrationSampler.DefaultSeqLen(config));
        Assert.Equal(2048, CalibrationSampler.DefaultSeqLen(config with { MaxPositions = 4096 }));
    }
}
