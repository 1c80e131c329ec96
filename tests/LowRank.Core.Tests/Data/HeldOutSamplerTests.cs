using LowRank.Data;
using LowRank.Torch;

namespace LowRank.Tests.Data;

public sealed class HeldOutSamplerTests
{
    public HeldOutSamplerTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    /// <summary>A stream whose token at position i is i, so every sample's first position names where it was cut.</summary>
    private static TokenizedText Positions(int n) =>
        new(Enumerable.Range(0, n).ToArray(), new TokenProtocolRecord { Name = "test", Description = "positions", Bos = false });

    private static long[] Starts(TorchSharp.torch.Tensor ids) =>
        Enumerable.Range(0, (int)ids.shape[0]).Select(i => ids[i, 0].item<long>()).ToArray();

    [Fact]
    public void Held_out_windows_share_no_position_with_the_calibration_windows_or_each_other()
    {
        var stream = Positions(20_000);
        var options = new CalibrationOptions { Samples = 64, SeqLen = 100, Seed = 42, Bos = false };
        var source = new SourceText { Text = "", Location = "test", Format = "plain", Description = "test", Sha256 = "", Bytes = 0, TotalBytes = 0 };
        using var calibration = CalibrationSampler.Sample(stream, source, options);
        using var heldOut = HeldOutSampler.Sample(stream, options, 32);
        Assert.Equal([32L, 100L], heldOut.shape);
        var calibrationStarts = Starts(calibration.Tokens);
        var heldOutStarts = Starts(heldOut);
        // Each row is a contiguous window of the stream.
        for (var i = 0; i < 32; i++) Assert.Equal(heldOutStarts[i] + 99, heldOut[i, 99].item<long>());
        foreach (var (s, i) in heldOutStarts.Select((s, i) => (s, i)))
        {
            Assert.All(calibrationStarts, c => Assert.True(s + 100 <= c || c + 100 <= s, $"held-out window at {s} overlaps the calibration window at {c}"));
            Assert.All(heldOutStarts.Where((_, j) => j != i), o => Assert.True(s + 100 <= o || o + 100 <= s, $"held-out windows at {s} and {o} overlap"));
        }
        // Deterministic: the same seed gives the same windows.
        using var again = HeldOutSampler.Sample(stream, options, 32);
        Assert.Equal(heldOutStarts, Starts(again));
    }

    [Fact]
    public void A_text_too_short_for_disjoint_windows_is_a_clear_error()
    {
        var options = new CalibrationOptions { Samples = 8, SeqLen = 100, Seed = 1, Bos = false };
        var error = Assert.Throws<LrkException>(() => HeldOutSampler.Sample(Positions(300), options, 4));
        Assert.Equal(ErrorCodes.DataTooShort, error.Code);
    }
}
