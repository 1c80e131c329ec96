using LowRank.Data;
using LowRank.Tests.Models;
using LowRank.Tests.TestSupport;
using Xunit.Abstractions;

namespace LowRank.Tests.Data;

/// <summary>Calibration samples as the compressor draws them for stories260K: the suggested split of the shared
/// README (calibrate on bytes [400000, 794375) of the TinyStories prefix), stream protocol, paper defaults capped at
/// the model's 512 positions.</summary>
public sealed class Stories260KCalibrationTests : IClassFixture<Stories260KTests.ImportedModel>
{
    private readonly Stories260KTests.ImportedModel _imported;
    private readonly ITestOutputHelper _output;

    public Stories260KCalibrationTests(Stories260KTests.ImportedModel imported, ITestOutputHelper output)
    {
        _imported = imported;
        _output = output;
    }

    [RequiresPathFact("../shared/data/tinystories_valid_prefix.txt")]
    public void Samples_from_a_byte_range_are_deterministic_windows_of_the_stream()
    {
        using var loaded = _imported.Load();
        var source = TextSources.Load(EvalTestData.TinyStories + "[400000:794375]");
        var stream = TokenProtocol.Stream.Encode(loaded.Tokenizer!, source);
        var options = new CalibrationOptions { SeqLen = CalibrationSampler.DefaultSeqLen(loaded.Config) };
        using var first = CalibrationSampler.Sample(stream, source, options);
        using var second = CalibrationSampler.Sample(TokenProtocol.Stream.Encode(loaded.Tokenizer!, TextSources.Load(EvalTestData.TinyStories + "[400000:794375]")), source, options);
        _output.WriteLine($"{source.Description}: {stream.Count} tokens; 256 × 512 samples, tokens {first.Protocol.TokensSha256}, digest {first.Protocol.Digest()}");

        Assert.Equal([256L, 512L], first.Tokens.shape);
        Assert.Equal(394_375, first.Protocol.SourceBytes);
        Assert.Equal(SourceText.Sha256Hex(File.ReadAllBytes(EvalTestData.TinyStories).AsSpan(400_000)), first.Protocol.SourceSha256);
        Assert.Equal("stream", first.Protocol.TokenProtocol.Name);
        Assert.Equal(stream.Count, first.Protocol.StreamTokens);
        Assert.Equal(first.Protocol.Digest(), second.Protocol.Digest());
        Assert.Equal(first.Tokens.data<long>().ToArray(), second.Tokens.data<long>().ToArray());

        // every sample is BOS followed by 511 consecutive tokens of the stream
        var rows = first.Tokens.data<long>().ToArray();
        var text = string.Join(",", stream.Tokens);
        for (var i = 0; i < 256; i += 37)
        {
            Assert.Equal(1, rows[i * 512]);
            var tail = string.Join(",", rows.Skip(i * 512 + 1).Take(511));
            Assert.Contains(tail, text);
        }
    }
}
