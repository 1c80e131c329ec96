using LowRank.Models;
using LowRank.Models.Architectures;
using LowRank.Models.Llama2c;
using LowRank.Tests.TestSupport;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Tests.Compression;

/// <summary>Real models for pipeline tests: the committed parity fixtures (tiny random HF models of each family) and
/// stories260K from ../shared.</summary>
internal static class TestModels
{
    public static string Fixture(string family) => Path.Combine(RepoPaths.Root, "tests", "fixtures", "parity", family);

    public static DecoderModel LoadFixture(string family, DecoderModelOptions? options = null)
    {
        var folder = Fixture(family);
        var config = ModelConfigReader.Read(folder);
        using var store = TensorStore.Open(folder);
        var source = new WeightSource(store.Names, name => store.Load(name));
        return config.Family switch
        {
            ModelFamily.Opt => new OptModel(config, source, options),
            ModelFamily.Gpt2 => new Gpt2Model(config, source, options),
            _ => new LlamaModel(config, source, options),
        };
    }

    public static LlamaModel LoadStories260K(DecoderModelOptions? options = null)
    {
        var checkpoint = Llama2cCheckpoint.Open(Stories260K.Checkpoint);
        return new LlamaModel(checkpoint.ToModelConfig(), checkpoint.AsWeightSource(), options);
    }

    /// <summary>Every factorised linear's A then B values, in block order: two runs made the same factors iff equal.</summary>
    public static float[] FactorValues(IDecoderModel model) =>
        Enumerable.Range(0, model.BlockCount).SelectMany(b => model.BlockLinears(b)).Where(l => l.IsFactorized)
            .SelectMany(l => l.A!.data<float>().ToArray().Concat(l.B!.data<float>().ToArray())).ToArray();

    /// <summary>Seeded token ids [samples, seq] starting with BOS (1), the rest uniform over the vocabulary.</summary>
    public static Tensor RandomIds(long samples, long seq, long vocab, ulong seed)
    {
        var ids = randint(3, vocab, [samples, seq], dtype: ScalarType.Int64, generator: new Generator(seed));
        ids[.., 0] = tensor(1L);
        return ids;
    }

    /// <summary>Relative output error of block <paramref name="block"/> of <paramref name="compressed"/> against the same block of
    /// <paramref name="original"/>, both fed <paramref name="hidden"/>.</summary>
    public static double BlockError(IDecoderModel original, IDecoderModel compressed, int block, Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var reference = original.RunBlock(block, hidden).to(float64);
        var output = compressed.RunBlock(block, hidden).to(float64);
        return ((output - reference).square().sum() / reference.square().sum()).item<double>();
    }
}
