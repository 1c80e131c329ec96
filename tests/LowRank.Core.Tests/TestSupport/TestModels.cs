using LowRank.Compression;
using LowRank.Models;
using LowRank.Models.Architectures;
using LowRank.Models.Llama2c;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Tests.TestSupport;

/// <summary>Real models for pipeline tests: the committed parity fixtures (tiny random HF models of each family) and
/// stories260K from ../shared.</summary>
internal static class TestModels
{
    public static DecoderModel LoadFixture(string family, DecoderModelOptions? options = null)
    {
        var folder = ParityFixtures.Folder(family);
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

    /// <summary>Compresses <paramref name="model"/> on seeded random calibration ids [samples, seq] over its vocabulary.</summary>
    public static CompressionReport CompressOnRandomIds(IDecoderModel model, long samples, long seq, ulong seed, CompressionOptions options) =>
        Compressor.Compress(model, RandomIds(samples, seq, model.Config.VocabSize, seed), options);

    /// <summary>A fresh copy of the <paramref name="family"/> fixture compressed on seeded random ids: its factor values
    /// (<see cref="FactorValues"/>) and the report. Two calls with the same arguments must give the same factors.</summary>
    public static (float[] Factors, CompressionReport Report) CompressedFactors(string family, CompressionOptions options,
        long samples, long seq, ulong seed, DecoderModelOptions? modelOptions = null)
    {
        using var model = LoadFixture(family, modelOptions);
        using var scope = NewDisposeScope();
        var report = CompressOnRandomIds(model, samples, seq, seed, options);
        return (FactorValues(model), report);
    }

    /// <summary>
    /// The llama fixture compressed twice with <paramref name="options"/>, decomposition overlap off then on. Checks what
    /// must differ: each report names its schedule, and only the overlapped run timed waits for the worker thread (block
    /// i's decomposition ran there while block i+1 was profiled). The factors are the caller's to compare.
    /// </summary>
    public static ((float[] Factors, CompressionReport Report) Serial, (float[] Factors, CompressionReport Report) Overlapped) CompressSerialAndOverlapped(
        CompressionOptions options, long samples, long seq, ulong seed, DecoderModelOptions modelOptions)
    {
        var serial = CompressedFactors("llama", options with { DecompositionOverlap = DecompositionOverlap.Off }, samples, seq, seed, modelOptions);
        var overlapped = CompressedFactors("llama", options with { DecompositionOverlap = DecompositionOverlap.On }, samples, seq, seed, modelOptions);
        Assert.StartsWith("off", serial.Report.DecompositionOverlap);
        Assert.StartsWith("on", overlapped.Report.DecompositionOverlap);
        Assert.True(overlapped.Report.Seconds.ContainsKey("decomposition_wait"));
        Assert.False(serial.Report.Seconds.ContainsKey("decomposition_wait"));
        Assert.NotEmpty(serial.Factors);
        return (serial, overlapped);
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
