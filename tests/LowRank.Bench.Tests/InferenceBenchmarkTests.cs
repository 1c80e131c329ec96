using LowRank.Bench.Inference;
using LowRank.Torch;

namespace LowRank.Bench.Tests;

/// <summary>
/// bench inference end to end on a two-block tiny shape (no speed is asserted: that is what the benchmark prints):
/// every variant runs on both runtimes, the compressed checkpoint and export are smaller on disk in proportion to the
/// parameters removed, and the work folder is left empty. About 10 s.
/// </summary>
public sealed class InferenceBenchmarkTests
{
    public InferenceBenchmarkTests() => TorchBackend.Initialize(DeviceRequest.Cpu);

    [Fact]
    public void Dense_and_compressed_variants_run_on_both_runtimes_and_the_compressed_ones_are_smaller()
    {
        using var temp = new TempFolder();
        var report = InferenceBenchmark.Run(new InferenceBenchmarkOptions
        {
            Shape = ScaleShape.Parse("tiny"),
            Layers = 2,
            Ratios = [0.5],
            PrefillTokens = 8,
            DecodePrompt = 4,
            DecodeSteps = 2,
            DecodeBatches = [1, 2],
            Threads = 1,
            Work = temp.Path,
        });
        Assert.Equal(4, report.Results.Count);
        Assert.All(report.Results, r =>
        {
            Assert.True(r.PrefillTokensPerSecond > 0);
            Assert.Equal([1, 2], r.Decode.Select(d => d.Batch));
            Assert.All(r.Decode, d => Assert.True(d.TokensPerSecond > 0));
        });
        foreach (var runtime in new[] { "onnxruntime", "torchsharp" })
        {
            var dense = report.Results.Single(r => r.Runtime == runtime && r.RequestedRatio is null);
            var compressed = report.Results.Single(r => r.Runtime == runtime && r.RequestedRatio == 0.5);
            Assert.Equal(0, dense.AchievedRatio);
            Assert.InRange(compressed.AchievedRatio, 0.5, 0.55);
            Assert.InRange((double)compressed.LinearParameters / dense.LinearParameters, 0.45, 0.5);
            Assert.True(compressed.BytesOnDisk < dense.BytesOnDisk, $"{runtime}: {compressed.BytesOnDisk} >= {dense.BytesOnDisk}");
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path));
    }
}
