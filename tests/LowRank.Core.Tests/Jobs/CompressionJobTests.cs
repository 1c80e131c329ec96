using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Data;
using LowRank.Jobs;
using LowRank.Models;
using LowRank.Tests.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace LowRank.Tests.Jobs;

/// <summary>The compress workflow end to end on the committed self-trained models: calibrate on real text, compress,
/// write the folder, load it back.</summary>
public sealed class CompressionJobTests
{
    public CompressionJobTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private static CompressionJobOptions Job(string model, string output, CompressionMethod method) =>
        ReadmeJob.For(model, output, new CompressionOptions { Method = method, Ratio = 0.4, BatchSize = 4 });

    [Theory]
    [InlineData("llama-moby", CompressionMethod.SvdLlm)]
    [InlineData("gpt2-moby", CompressionMethod.AdaSvd)]
    [InlineData("opt-moby", CompressionMethod.LcSvd)]
    public void Written_model_loads_back_and_computes_what_was_compressed_in_memory(string name, CompressionMethod method)
    {
        using var temp = new TempFolder();
        var output = temp.File("compressed");
        var result = CompressionJob.Run(Job(name, output, method));

        // The same run in memory (deterministic on the CPU).
        using var loaded = ModelLoader.Load(RepoPaths.Model(name), new ModelLoadOptions { Device = DeviceRequest.Cpu });
        var source = TextSources.Load(RepoPaths.Readme);
        using var calibration = CalibrationSampler.Sample(TokenProtocol.Stream.Encode(loaded.Tokenizer!, source), source,
            new CalibrationOptions { Samples = 8, SeqLen = 64 });
        Assert.Equal(calibration.Protocol.TokensSha256, result.Calibration!.TokensSha256);
        Compressor.Compress(loaded.Model, calibration.Tokens, new CompressionOptions { Method = method, Ratio = 0.4, BatchSize = 4 });
        ArtifactWriter.RoundFactorsToStorage(loaded.Model, ArtifactWriter.ResolveFactorDtype(null, loaded.Config));

        using var reloaded = ModelLoader.Load(output, new ModelLoadOptions { Device = DeviceRequest.Cpu });
        using var scope = NewDisposeScope();
        var ids = calibration.Tokens.narrow(0, 0, 2);
        var expected = loaded.Model.Logits(ids);
        var actual = reloaded.Model.Logits(ids);
        Assert.True((actual - expected).abs().max().item<float>() < 1e-4f, "reloaded logits differ from the in-memory compressed model");
        Assert.All(Enumerable.Range(0, reloaded.Model.BlockCount).SelectMany(b => reloaded.Model.BlockLinears(b)),
            l => Assert.Equal(result.Report.Modules.Single(m => m.Name == l.Name).Dense, !l.IsFactorized));

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!;
        Assert.Equal(method.Name().ToLowerInvariant(), config["lowrank"]!["method"]!.GetValue<string>());
        Assert.Equal(0.4, config["lowrank"]!["requested_ratio"]!.GetValue<double>());
        Assert.Equal(result.Report.Modules.Count(m => !m.Dense), config["lowrank"]!["truncation_ranks"]!.AsObject().Count);
        Assert.True(File.Exists(Path.Combine(output, CompressionJob.ReportFileName)));
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
        Assert.Equal(["compressed"], Directory.EnumerateFileSystemEntries(temp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Cancelled_write_leaves_nothing_behind()
    {
        using var temp = new TempFolder();
        using var cancellation = new CancellationTokenSource();
        var progress = new Progress(e =>
        {
            if (e.Stage == "write") cancellation.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            CompressionJob.Run(Job("llama-moby", temp.File("out"), CompressionMethod.Svd) with { Calibration = new CalibrationSpec() }, progress, cancellation.Token));
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path));
    }

    [Fact]
    public void Existing_output_is_refused_without_force()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("keep.txt"), "x");
        var error = Assert.Throws<LrkException>(() => CompressionJob.Run(Job("llama-moby", temp.Path, CompressionMethod.Svd)));
        Assert.Equal(ErrorCodes.OutputExists, error.Code);
        Assert.True(File.Exists(temp.File("keep.txt")));
    }

    private sealed class Progress(Action<ProgressUpdate> action) : IProgress<ProgressUpdate>
    {
        public void Report(ProgressUpdate value) => action(value);
    }
}
