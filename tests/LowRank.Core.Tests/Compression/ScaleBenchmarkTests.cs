using LowRank.Compression;
using LowRank.Models;
using LowRank.Torch;

namespace LowRank.Tests.Compression;

/// <summary><c>bench gpu</c>'s engine on the CPU-sized "tiny" shape: synthesis, the real pipeline, the fp64 check.</summary>
public sealed class ScaleBenchmarkTests : IDisposable
{
    private readonly string work = Path.Combine(Path.GetTempPath(), $"lowrank-scale-{Guid.NewGuid():N}");

    public ScaleBenchmarkTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [Fact]
    public void Tiny_shape_is_synthesised_compressed_written_and_checked_against_fp64()
    {
        var result = ScaleBenchmark.Run(new ScaleBenchmarkOptions
        {
            Shape = ScaleShape.Parse("tiny"),
            Samples = 4,
            SeqLen = 32,
            BatchSize = 2,
            Device = DeviceRequest.Cpu,
            WorkFolder = work,
            Set = ["SvdAlgorithm=GramEigh"],
        });

        Assert.Equal(2, result.BlocksRun);
        Assert.InRange(result.Ratios.AchievedLinearRatio, 0.49, 0.52);
        foreach (var stage in new[] { "load", "statistics", "decomposition", "write", "end_to_end" })
            Assert.True(result.Seconds[stage] >= 0, stage);
        Assert.True(result.Seconds["end_to_end"] >= result.Seconds["load"] + result.Seconds["write"]);
        Assert.Equal(3, result.Accuracy.Count);
        foreach (var check in result.Accuracy)
        {
            Assert.Equal("GramEigh", check.Algorithm);
            Assert.InRange(check.RelativeErrorVsFp64Svd, 0, 1e-9);
            // fp32 SVD is measurably worse than the fp64 Gram path, which is the point of the check.
            Assert.True(check.Fp32SvdRelativeErrorVsFp64Svd > check.RelativeErrorVsFp64Svd);
        }
        // The artifact was written and loads back as factors.
        var outFolder = Path.Combine(work, "out-tiny-SVD-LLM");
        using var compressed = ModelLoader.Load(outFolder, new ModelLoadOptions { Device = DeviceRequest.Cpu, LoadTokenizer = false });
        Assert.All(compressed.Model.BlockLinears(0), l => Assert.True(l.IsFactorized));
    }

    [Fact]
    public void Unknown_shape_and_too_many_layers_are_refused()
    {
        Assert.Equal(ErrorCodes.BadArgument, Assert.Throws<LrkException>(() => ScaleShape.Parse("8b")).Code);
        var e = Assert.Throws<LrkException>(() => ScaleBenchmark.Run(new ScaleBenchmarkOptions
        {
            Shape = ScaleShape.Parse("tiny"), Layers = 3, Device = DeviceRequest.Cpu, WorkFolder = work,
        }));
        Assert.Equal(ErrorCodes.BadArgument, e.Code);
    }

    public void Dispose()
    {
        if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
    }
}
