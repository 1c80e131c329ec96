using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Models;
using LowRank.Models.Architectures;
using LowRank.Models.Llama2c;
using LowRank.Tests.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Artifacts;

/// <summary>An artifact whose source is not a safetensors folder (a llama2.c checkpoint read directly): every tensor
/// then comes from the model, the config from its HF equivalent, and tok512.bin becomes tokenizer.bin.</summary>
public sealed class Llama2cSourceTests
{
    public Llama2cSourceTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Artifact_of_a_llama2c_checkpoint_loads_back_with_its_tokenizer()
    {
        using var temp = new TempFolder();
        using var model = TestModels.LoadStories260K();
        Compressor.Compress(model, null, new CompressionOptions { Method = CompressionMethod.Svd, Ratio = 0.3 });
        var written = ArtifactWriter.Write(new ArtifactRequest
        {
            Model = model,
            SourcePath = Stories260K.Checkpoint,
            OutputFolder = temp.File("stories-svd"),
            Method = "svd",
            RequestedRatio = 0.3,
        });

        Assert.Equal(FactorDtype.Float32, written.Section.FactorDtype); // stories260K is fp32
        Assert.True(File.Exists(Path.Combine(written.Folder, "tokenizer.bin")));
        Assert.False(File.Exists(Path.Combine(written.Folder, "stories260K.bin")));
        Assert.Equal(35, written.Section.TruncationRanks.Count);
        Assert.True(ArtifactVerifier.Verify(written.Folder).Ok);

        using var loaded = ModelLoader.Load(written.Folder, new ModelLoadOptions { Device = DeviceRequest.Cpu });
        Assert.Equal([1, 403, 407, 261, 378], loaded.Tokenizer!.Encode("Once upon a time"));
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 1, 403, 407, 261, 378 }).unsqueeze(0);
        Assert.Equal(0f, (model.Logits(ids) - loaded.Model.Logits(ids)).abs().max().item<float>());
    }
}
