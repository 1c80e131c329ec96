using LowRank.Models;

namespace LowRank.Tests.Models;

/// <summary><see cref="ModelSizeCheck"/> on the real llama-moby config and tensor headers (nothing is loaded): the
/// config as shipped passes; sizes beyond the tensors present fail at once, before a model would allocate anything.</summary>
public sealed class ModelSizeCheckTests
{
    private static readonly ModelConfig Config = ModelConfigReader.Read(RepoPaths.LlamaMoby);

    private static void Check(ModelConfig config)
    {
        using var store = TensorStore.Open(RepoPaths.LlamaMoby);
        ModelSizeCheck.Check(config, store.Names, name => store.Info(name).Shape);
    }

    [Fact]
    public void The_shipped_config_fits_its_tensors() => Check(Config);

    [Theory]
    [InlineData(5)]
    [InlineData(1_000_000_000)]
    [InlineData(int.MaxValue)]
    public void More_layers_than_the_weights_hold_is_a_missing_tensor(int layers)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = Assert.Throws<LrkException>(() => Check(Config with { NumLayers = layers }));
        Assert.Equal(ErrorCodes.MissingTensor, error.Code);
        Assert.Contains("layer 4", error.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    [Fact]
    public void Fewer_layers_than_stored_are_allowed() => Check(Config with { NumLayers = 2 });

    [Theory]
    [InlineData("head_dim")]
    [InlineData("hidden_size")]
    [InlineData("intermediate_size")]
    [InlineData("vocab_size")]
    public void A_dimension_longer_than_every_tensor_axis_is_a_bad_checkpoint(string key)
    {
        var config = key switch
        {
            "head_dim" => Config with { HeadDim = 1_000_000_000 },
            "hidden_size" => Config with { HiddenSize = 4096 },
            "intermediate_size" => Config with { IntermediateSize = 2_000_000_000 },
            _ => Config with { VocabSize = 100_000 },
        };
        var error = Assert.Throws<LrkException>(() => Check(config));
        Assert.Equal(ErrorCodes.BadCheckpoint, error.Code);
        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_source_that_cannot_tell_shapes_skips_the_dimension_check()
    {
        using var store = TensorStore.Open(RepoPaths.LlamaMoby);
        ModelSizeCheck.Check(Config with { HeadDim = 1_000_000_000 }, store.Names, _ => null);
    }
}
