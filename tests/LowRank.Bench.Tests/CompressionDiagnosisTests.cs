using LowRank.Compression;
using LowRank.Models;
using LowRank.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Bench.Tests;

/// <summary>The diagnosis measures what the compression reports, by an independent computation: each test pairs a number a
/// method reports about its own fit with the number the diagnosis measures on the finished model.</summary>
public sealed class CompressionDiagnosisTests
{
    public CompressionDiagnosisTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    /// <summary>A parity fixture (a small random HF model of the family) on the CPU in fp32.</summary>
    private static IDecoderModel Load(string family) =>
        ModelLoader.Load(ParityFixtures.Folder(family), new ModelLoadOptions { Device = DeviceRequest.Cpu, LoadTokenizer = false }).Model;

    /// <summary>Seeded token ids [samples, seq] starting with BOS (1).</summary>
    private static Tensor RandomIds(long samples, long seq, long vocab, ulong seed)
    {
        var ids = randint(3, vocab, [samples, seq], dtype: ScalarType.Int64, generator: new Generator(seed));
        ids[.., 0] = tensor(1L);
        return ids;
    }

    /// <summary>Compresses <paramref name="model"/> on seeded calibration ids [8, 24]; returns the ids and the report.</summary>
    private static (Tensor Ids, CompressionReport Report) Compress(IDecoderModel model, ulong seed, CompressionOptions options)
    {
        var ids = RandomIds(8, 24, model.Config.VocabSize, seed);
        return (ids, Compressor.Compress(model, ids, options));
    }

    private static void AssertClose(double expected, double measured, double tolerance, string what) =>
        Assert.True(Math.Abs(expected - measured) <= tolerance * Math.Max(1e-3, Math.Abs(expected)), $"{what}: reported {expected:E6}, measured {measured:E6}");

    [Fact]
    public void A_model_against_itself_has_no_error()
    {
        using var dense = Load("llama");
        using var same = Load("llama");
        using var scope = NewDisposeScope();
        var d = CompressionDiagnosis.Run(dense, same, RandomIds(4, 16, dense.Config.VocabSize, 5), RandomIds(2, 16, dense.Config.VocabSize, 6));
        Assert.Equal(4 * 15, d.CalibrationTokens);
        Assert.Equal(2 * 15, d.HeldOutTokens);
        Assert.All(d.Blocks, b => Assert.Equal((0.0, 0.0), (b.Drift.Calibration, b.Local.HeldOut!.Value)));
        Assert.All(d.Linears, l => Assert.Equal((0.0, 0.0, 0.0), (l.OwnInputs.Calibration, l.OriginalTarget.HeldOut!.Value, l.OriginalInputs.Calibration)));
        Assert.True(Math.Abs(d.Kl.Calibration) < 1e-12);
        Assert.Equal(d.DenseNll.Calibration, d.Nll.Calibration);
    }

    [Fact]
    public void Svd_llm_errors_on_the_original_inputs_are_its_truncation_losses()
    {
        // With the published pipeline (original propagation) each linear is whitened with the original model's inputs:
        // truncating σ_i costs σ_i² of ‖W X_o‖² = Σσ², so its error there is the reported relative truncation loss squared.
        using var dense = Load("opt");
        using var model = Load("opt");
        using var scope = NewDisposeScope();
        var (ids, report) = Compress(model, 11, new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.5, BatchSize = 4 });
        var d = CompressionDiagnosis.Run(dense, model, ids, null, batchSize: 3);
        Assert.Null(d.HeldOutTokens);
        var checkedLayers = 0;
        foreach (var module in report.Modules.Where(m => !m.Dense))
        {
            var linear = d.Linears.Single(l => l.Name == module.Name);
            // 2e-3: both sides sum fp32 Gram products of the same inputs, in batches of different sizes; errors of 1e-4 of
            // the output energy live in directions where that rounding shows (measured up to 4e-4 relative).
            AssertClose(module.RelativeTruncationLoss!.Value * module.RelativeTruncationLoss.Value, linear.OriginalInputs.Calibration, 2e-3, module.Name);
            checkedLayers++;
        }
        Assert.True(checkedLayers >= 4 * dense.BlockCount);
        // Block 0 sees the same inputs in both models: the error against the original output is the own-input error there.
        Assert.All(d.Linears.Where(l => l.Block == 0 && l.Kind is "q_proj" or "k_proj" or "v_proj"),
            l => AssertClose(l.OriginalInputs.Calibration, l.OriginalTarget.Calibration, 1e-6, l.Name));
        Assert.True(d.Kl.Calibration > 0 && d.Nll.Calibration != d.DenseNll.Calibration);
    }

    [Fact]
    public void Adasvd_errors_on_its_own_inputs_are_its_reported_objectives()
    {
        using var dense = Load("llama");
        using var model = Load("llama");
        using var scope = NewDisposeScope();
        var (ids, report) = Compress(model, 12, new CompressionOptions { Method = CompressionMethod.AdaSvd, Ratio = 0.4, BatchSize = 4 });
        var heldOut = RandomIds(4, 24, dense.Config.VocabSize, 13);
        var d = CompressionDiagnosis.Run(dense, model, ids, heldOut, batchSize: 5);
        foreach (var module in report.Modules.Where(m => !m.Dense))
            AssertClose(module.ObjectiveAfter!.Value, d.Linears.Single(l => l.Name == module.Name).OwnInputs.Calibration, 1e-4, module.Name);
        // The held-out NLL is the perplexity the benchmark reports for those samples.
        AssertClose(Math.Log(MethodBenchmark.SamplePerplexity(model, heldOut)), d.Nll.HeldOut!.Value, 1e-9, "held-out NLL");
        AssertClose(Math.Log(MethodBenchmark.SamplePerplexity(dense, heldOut)), d.DenseNll.HeldOut!.Value, 1e-9, "dense held-out NLL");
    }

    [Fact]
    public void Lc_svd_block_output_errors_are_the_measured_drift()
    {
        using var dense = Load("gpt2");
        using var model = Load("gpt2");
        using var scope = NewDisposeScope();
        var (ids, report) = Compress(model, 14, new CompressionOptions { Method = CompressionMethod.LcSvd, Ratio = 0.5, BatchSize = 4, LcSvdRankSearch = false });
        var d = CompressionDiagnosis.Run(dense, model, ids, null);
        foreach (var block in report.Blocks)
            AssertClose(block.OutputError!.Value, d.Blocks[block.Block].Drift.Calibration, 1e-4, $"block {block.Block}");
        Assert.All(d.Blocks, b => Assert.True(b.Local.Calibration > 0));
    }
}
