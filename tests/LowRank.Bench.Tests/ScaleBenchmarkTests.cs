using LowRank.Compression;
using LowRank.Models;
using LowRank.Torch;

namespace LowRank.Bench.Tests;

/// <summary><c>bench gpu</c>'s engine on the CPU-sized "tiny" shape: synthesis, the real pipeline, the fp64 check.</summary>
public sealed class ScaleBenchmarkTests : IDisposable
{
    private readonly TempFolder temp = new("lowrank-scale");

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
            WorkFolder = temp.Path,
            Set = ["SvdAlgorithm=GramEigh"],
        });

        Assert.Equal(4, result.BlocksRun);
        Assert.Equal("whole", result.Checkpoint);
        Assert.InRange(result.Ratios.AchievedLinearRatio, 0.49, 0.52);
        // Every stage was timed (times are rounded to ms, so a tiny stage may read 0; the whole run cannot).
        Assert.Equal(["decomposition", "end_to_end", "load", "statistics", "write"], result.Seconds.Keys.Where(k => k is "load" or "statistics" or "decomposition" or "write" or "end_to_end").Order());
        Assert.True(result.Seconds["end_to_end"] > 0);
        Assert.True(result.Seconds["end_to_end"] >= result.Seconds["load"] + result.Seconds["write"]);
        Assert.Equal(3, result.Accuracy.Count);
        foreach (var check in result.Accuracy)
        {
            Assert.Equal("GramEigh", check.Algorithm);
            Assert.InRange(check.RelativeErrorVsFp64Svd, 0, 1e-9);
            // fp32 SVD is measurably worse than the fp64 Gram path, which is the point of the check.
            Assert.True(check.Fp32SvdRelativeErrorVsFp64Svd > check.RelativeErrorVsFp64Svd);
            // On the CPU every Gram is fp32 FMA: close to the fp64 Gram, and so are the factors.
            Assert.Equal("Fp32", check.GramPath);
            Assert.InRange(check.PipelineGramVsFp64Gram, 0, 1e-5);
            Assert.InRange(check.FactorsVsAllFp64, 0, 1e-3);
        }
        // The artifact was written and loads back as factors.
        var outFolder = temp.Combine("out-tiny-SVD-LLM");
        using var compressed = ModelLoader.Load(outFolder, new ModelLoadOptions { Device = DeviceRequest.Cpu, LoadTokenizer = false });
        Assert.All(compressed.Model.BlockLinears(0), l => Assert.True(l.IsFactorized));
    }

    [Fact]
    public void A_staged_checkpoint_larger_than_its_disk_window_gives_the_same_factors_as_the_whole_one()
    {
        ScaleBenchmarkOptions Options(CheckpointStaging staging) => new()
        {
            Shape = ScaleShape.Parse("tiny"),
            // AdaSVD reads every block twice (adaCR profile, then compression).
            Method = CompressionMethod.AdaSvd,
            Samples = 4,
            SeqLen = 32,
            BatchSize = 2,
            Device = DeviceRequest.Cpu,
            WorkFolder = temp.Path,
            WriteOutput = false,
            Staging = staging,
            // Two of the four blocks on disk at a time: blocks are punched out and, for the second pass, staged again.
            StagedBlocks = 2,
            Checksum = true,
            AccuracyKinds = [],
        };
        var whole = ScaleBenchmark.Run(Options(CheckpointStaging.Whole));
        var staged = ScaleBenchmark.Run(Options(CheckpointStaging.Staged));

        Assert.StartsWith("staged", staged.Checkpoint);
        Assert.True(string.Join(" | ", staged.Notes).Contains("8 block stagings", StringComparison.Ordinal), string.Join(" | ", staged.Notes));
        Assert.NotNull(whole.FactorSha256);
        Assert.Equal(whole.FactorSha256, staged.FactorSha256);
        // At most two blocks' data on disk (plus the embeddings, norms and head, always there).
        var shape = ScaleShape.Parse("tiny");
        long blockBytes = 2L * (2L * shape.Hidden + 2L * shape.Hidden * shape.Hidden + 2L * shape.Hidden * (shape.Hidden / shape.Heads * shape.KvHeads) + 3L * shape.Hidden * shape.Ffn);
        long otherBytes = 2L * (2L * shape.Vocab * shape.Hidden + shape.Hidden);
        Assert.InRange(staged.StagedPeakGiB!.Value * (1L << 30), 0, 2 * blockBytes + otherBytes + (1L << 24));
        // The staging folder is gone afterwards.
        Assert.Empty(Directory.GetDirectories(temp.Path, "*-staged"));
        // A staged checkpoint cannot be the artifact writer's source.
        var e = Assert.Throws<LrkException>(() => ScaleBenchmark.Run(Options(CheckpointStaging.Staged) with { WriteOutput = true }));
        Assert.Equal(ErrorCodes.BadArgument, e.Code);
    }

    [Fact]
    public void Unknown_shape_and_too_many_layers_are_refused()
    {
        Assert.Equal(ErrorCodes.BadArgument, Assert.Throws<LrkException>(() => ScaleShape.Parse("8b")).Code);
        var e = Assert.Throws<LrkException>(() => ScaleBenchmark.Run(new ScaleBenchmarkOptions
        {
            Shape = ScaleShape.Parse("tiny"), Layers = 5, Device = DeviceRequest.Cpu, WorkFolder = temp.Path,
        }));
        Assert.Equal(ErrorCodes.BadArgument, e.Code);
    }

    public void Dispose() => temp.Dispose();
}
