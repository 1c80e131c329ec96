using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Models;
using LowRank.Tests.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Artifacts;

/// <summary>How the artifact writer, verifier and dense exporter behave: GPT-2's Conv1D layout, sharding, tampering,
/// cancellation, existing outputs. Plain SVD (no calibration data needed) on the committed models.</summary>
public sealed class ArtifactWriterTests
{
    public ArtifactWriterTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private static LoadedModel CompressedWithSvd(string folder, double ratio = 0.4)
    {
        var loaded = ArtifactRoundTripTests.Load(folder);
        Compressor.Compress(loaded.Model, null, new CompressionOptions { Method = CompressionMethod.Svd, Ratio = ratio });
        return loaded;
    }

    private static ArtifactRequest Request(LoadedModel loaded, string source, string output) => new()
    {
        Model = loaded.Model,
        SourcePath = source,
        OutputFolder = output,
        Method = "svd",
        RequestedRatio = 0.4,
    };

    private static Tensor Ids(LoadedModel loaded) =>
        tensor(loaded.Tokenizer!.Encode("It was the best of times, it was the worst of times.").Select(i => (long)i).ToArray()).unsqueeze(0);

    private static float MaxDifference(IDecoderModel a, IDecoderModel b, Tensor ids)
    {
        using var scope = NewDisposeScope();
        return (a.Logits(ids) - b.Logits(ids)).abs().max().item<float>();
    }

    [Fact]
    public void Gpt2_factors_are_stored_in_linear_layout_and_the_dense_export_in_conv1d_layout()
    {
        using var temp = new TempFolder();
        var source = RepoPaths.Model("gpt2-moby");
        using var loaded = CompressedWithSvd(source);
        ArtifactWriter.RoundFactorsToStorage(loaded.Model, FactorDtype.Float32);
        var artifact = ArtifactWriter.Write(Request(loaded, source, temp.File("gpt2")) with { FactorDtype = FactorDtype.Float32 });

        const string cAttn = "transformer.h.0.attn.c_attn";
        using (var stored = TensorStore.Open(artifact.Folder))
        using (var original = TensorStore.Open(source))
        {
            var dense = original.Info(cAttn + ".weight").Shape; // Conv1D: [in, out] = [128, 384]
            Assert.Equal([128L, 384L], dense);
            var rank = artifact.Section.TruncationRanks[cAttn];
            Assert.Equal([384L, rank], stored.Info(cAttn + ".lowrank_A.weight").Shape);
            Assert.Equal([(long)rank, 128L], stored.Info(cAttn + ".lowrank_B.weight").Shape);
            Assert.True(stored.Contains(cAttn + ".bias"));
        }
        using var reloaded = ArtifactRoundTripTests.Load(artifact.Folder);
        using var ids = Ids(loaded);
        Assert.Equal(0f, MaxDifference(loaded.Model, reloaded.Model, ids));

        var export = DenseExporter.Export(artifact.Folder, temp.File("gpt2-dense"), new DenseExportOptions { Dtype = FactorDtype.Float32 });
        using (var dense = TensorStore.Open(export.Folder))
        using (var stored = TensorStore.Open(artifact.Folder))
        using (var scope = NewDisposeScope())
        {
            Assert.Equal([128L, 384L], dense.Info(cAttn + ".weight").Shape);
            var product = matmul(stored.Load(cAttn + ".lowrank_A.weight", ScalarType.Float64), stored.Load(cAttn + ".lowrank_B.weight", ScalarType.Float64));
            var written = dense.Load(cAttn + ".weight", ScalarType.Float64);
            Assert.True(allclose(written, product.t(), rtol: 1e-6, atol: 1e-7));
        }
        using var denseModel = ArtifactRoundTripTests.Load(export.Folder);
        Assert.InRange(MaxDifference(loaded.Model, denseModel.Model, ids), 0f, 1e-3f);
    }

    [Fact]
    public void Large_models_are_sharded_and_load_back()
    {
        using var temp = new TempFolder();
        var source = RepoPaths.LlamaMoby;
        using var loaded = CompressedWithSvd(source);
        ArtifactWriter.RoundFactorsToStorage(loaded.Model, FactorDtype.Float16);
        var artifact = ArtifactWriter.Write(Request(loaded, source, temp.File("sharded")) with { MaxShardBytes = 300_000 });

        Assert.True(File.Exists(Path.Combine(artifact.Folder, "model.safetensors.index.json")));
        Assert.False(File.Exists(Path.Combine(artifact.Folder, "model.safetensors")));
        Assert.True(Directory.GetFiles(artifact.Folder, "model-*-of-*.safetensors").Length >= 3);
        Assert.Contains(artifact.Manifest.Files, f => f.Path == "model.safetensors.index.json");
        Assert.True(ArtifactVerifier.Verify(artifact.Folder).Ok);
        using var reloaded = ArtifactRoundTripTests.Load(artifact.Folder);
        using var ids = Ids(loaded);
        Assert.Equal(0f, MaxDifference(loaded.Model, reloaded.Model, ids));
        var export = DenseExporter.Export(artifact.Folder, temp.File("dense"), new DenseExportOptions { MaxShardBytes = 600_000 });
        Assert.True(File.Exists(Path.Combine(export.Folder, "model.safetensors.index.json")));
        using var dense = ArtifactRoundTripTests.Load(export.Folder);
        Assert.Equal(loaded.Model.BlockCount, dense.Model.BlockCount);
    }

    [Fact]
    public void A_streamed_artifact_holds_the_same_tensors_as_one_written_at_the_end()
    {
        using var temp = new TempFolder();
        var source = RepoPaths.LlamaMoby;
        using var loaded = ArtifactRoundTripTests.Load(source);
        var request = Request(loaded, source, temp.File("streamed")) with { Method = "svd-llm", MaxShardBytes = 300_000 };
        var completed = new List<int>();
        using var ids = TestModels.RandomIds(4, 32, loaded.Model.Config.VocabSize, 3);
        ArtifactResultAndShards Streamed()
        {
            using var streamed = StreamedArtifact.TryBegin(request);
            Assert.NotNull(streamed);
            // A temp folder exists while the compression runs; the block shards appear in it as blocks finish.
            Assert.Single(Directory.GetDirectories(temp.Path, ".streamed.lowrank-*.tmp"));
            Compressor.Compress(loaded.Model, ids, new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.4, BatchSize = 2 }, null,
                block =>
                {
                    lock (completed) completed.Add(block);
                    streamed.BlockCompleted(block);
                });
            var result = streamed.Complete(request);
            return new ArtifactResultAndShards(result, Directory.GetFiles(result.Folder, "model-*-of-*.safetensors").Length);
        }
        var (artifact, shards) = Streamed();
        Assert.Equal(Enumerable.Range(0, loaded.Model.BlockCount), completed.Order());
        Assert.True(shards >= 2, $"{shards} shards");
        Assert.True(ArtifactVerifier.Verify(artifact.Folder).Ok);
        Assert.Empty(Directory.GetDirectories(temp.Path, ".*"));

        var atEnd = ArtifactWriter.Write(request with { OutputFolder = temp.File("at-end") });
        using var a = TensorStore.Open(artifact.Folder);
        using var b = TensorStore.Open(atEnd.Folder);
        Assert.Equal(b.Names.Order(StringComparer.Ordinal), a.Names.Order(StringComparer.Ordinal));
        foreach (var name in b.Names)
        {
            var left = new byte[a.Info(name).ByteLength];
            var right = new byte[b.Info(name).ByteLength];
            a.ReadBytes(name, left);
            b.ReadBytes(name, right);
            Assert.True(left.AsSpan().SequenceEqual(right), $"{name} differs");
        }
        Assert.Equal(atEnd.Section.AchievedRatio, artifact.Section.AchievedRatio);
        Assert.Equal(atEnd.Manifest.ModifiedTensors, artifact.Manifest.ModifiedTensors);
        ArtifactWriter.RoundFactorsToStorage(loaded.Model, ArtifactWriter.ResolveFactorDtype(null, loaded.Model.Config));
        using var reloaded = ArtifactRoundTripTests.Load(artifact.Folder);
        using var text = Ids(loaded);
        Assert.Equal(0f, MaxDifference(loaded.Model, reloaded.Model, text));
    }

    [Fact]
    public void An_abandoned_stream_leaves_nothing_and_a_single_file_artifact_is_not_streamed()
    {
        using var temp = new TempFolder();
        var source = RepoPaths.LlamaMoby;
        using var loaded = ArtifactRoundTripTests.Load(source);
        var request = Request(loaded, source, temp.File("abandoned")) with { MaxShardBytes = 300_000 };
        using (var streamed = StreamedArtifact.TryBegin(request))
        {
            Assert.NotNull(streamed);
            Compressor.Compress(loaded.Model, null, new CompressionOptions { Method = CompressionMethod.Svd, Ratio = 0.4 });
            streamed.BlockCompleted(0);
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path));
        Assert.Null(StreamedArtifact.TryBegin(request with { MaxShardBytes = 4L << 30 }));
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path));
    }

    private sealed record ArtifactResultAndShards(ArtifactWriteResult Result, int Shards);

    [Fact]
    public void Verify_reports_a_changed_byte_a_missing_file_and_a_smuggled_file()
    {
        using var temp = new TempFolder();
        var source = RepoPaths.LlamaMoby;
        using var loaded = CompressedWithSvd(source);
        var folder = ArtifactWriter.Write(Request(loaded, source, temp.File("a"))).Folder;
        Assert.True(ArtifactVerifier.Verify(folder).Ok);

        var weights = Path.Combine(folder, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        bytes[^10] ^= 0x01;
        File.WriteAllBytes(weights, bytes);
        var result = ArtifactVerifier.Verify(folder);
        var problem = Assert.Single(result.Problems);
        Assert.Equal("model.safetensors", problem.Path);
        Assert.Contains("SHA-256", problem.Problem, StringComparison.Ordinal);

        bytes[^10] ^= 0x01;
        File.WriteAllBytes(weights, bytes);
        File.Delete(Path.Combine(folder, "merges.txt"));
        File.WriteAllText(Path.Combine(folder, "extra.txt"), "not from the writer");
        result = ArtifactVerifier.Verify(folder);
        Assert.Equal(["extra.txt: not listed in the manifest", "merges.txt: missing"],
            result.Problems.Select(p => $"{p.Path}: {p.Problem}").Order(StringComparer.Ordinal));

        var e = Assert.Throws<LrkException>(() => ArtifactVerifier.Verify(source));
        Assert.Equal(ErrorCodes.BadArtifact, e.Code);
    }

    [Fact]
    public void Cancelling_a_write_leaves_neither_the_artifact_nor_a_temp_folder()
    {
        using var temp = new TempFolder();
        var source = RepoPaths.LlamaMoby;
        using var loaded = CompressedWithSvd(source);
        using var cancellation = new CancellationTokenSource();
        var progress = new SynchronousProgress<ProgressUpdate>(update =>
        {
            if (update.Stage == "write" && update.Block == 10) cancellation.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() => ArtifactWriter.Write(Request(loaded, source, temp.File("cancelled")), progress, cancellation.Token));
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path));
    }

    [Fact]
    public void An_existing_output_is_kept_unless_overwrite_is_asked_and_the_source_is_never_the_output()
    {
        using var temp = new TempFolder();
        var source = RepoPaths.LlamaMoby;
        using var loaded = CompressedWithSvd(source);
        var output = temp.File("out");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "keep.txt"), "mine");

        var e = Assert.Throws<LrkException>(() => ArtifactWriter.Write(Request(loaded, source, output)));
        Assert.Equal(ErrorCodes.OutputExists, e.Code);
        Assert.True(File.Exists(Path.Combine(output, "keep.txt")));

        ArtifactWriter.Write(Request(loaded, source, output) with { Overwrite = true });
        Assert.False(File.Exists(Path.Combine(output, "keep.txt")));
        Assert.True(ArtifactVerifier.Verify(output).Ok);
        Assert.Equal(["out"], Directory.EnumerateFileSystemEntries(temp.Path).Select(Path.GetFileName));

        e = Assert.Throws<LrkException>(() => ArtifactWriter.CheckOutput(source, source, overwrite: true));
        Assert.Equal(ErrorCodes.OutputExists, e.Code);
    }

    [Fact]
    public void Dense_export_refuses_a_model_that_is_not_an_artifact()
    {
        using var temp = new TempFolder();
        var e = Assert.Throws<LrkException>(() => DenseExporter.Export(RepoPaths.LlamaMoby, temp.File("x")));
        Assert.Equal(ErrorCodes.BadArtifact, e.Code);
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path));
    }
}

/// <summary>An IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
