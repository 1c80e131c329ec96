using LowRank.Compression;
using LowRank.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Compression;

/// <summary>The block-by-block pipeline of every method on real (tiny) models of each family, on the CPU.</summary>
public sealed class CompressorTests
{
    public CompressorTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    public static TheoryData<string, string> MethodsAndFamilies()
    {
        var data = new TheoryData<string, string>();
        foreach (var method in CompressionMethods.LowRank) data.Add(method.Name(), "llama");
        foreach (var method in new[] { "SVD-LLM", "AdaSVD", "LC-SVD", "FWSVD" })
        {
            data.Add(method, "opt");
            data.Add(method, "gpt2");
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(MethodsAndFamilies))]
    public void Every_method_factorises_every_planned_linear_and_reports_the_achieved_ratio(string methodName, string family)
    {
        using var model = TestModels.LoadFixture(family);
        using var reference = TestModels.LoadFixture(family);
        using var scope = NewDisposeScope();
        var ids = TestModels.RandomIds(8, 32, model.Config.VocabSize, 5);
        var options = new CompressionOptions { Method = CompressionMethods.Parse(methodName), Ratio = 0.4, BatchSize = 4 };
        var events = new List<ProgressUpdate>();
        var report = Compressor.Compress(model, ids, options, new SynchronousProgress(events.Add));

        var linears = Enumerable.Range(0, model.BlockCount).SelectMany(b => model.BlockLinears(b)).ToArray();
        Assert.Equal(linears.Length, report.Modules.Count);
        foreach (var module in report.Modules)
        {
            var linear = linears.Single(l => l.Name == module.Name);
            Assert.Equal(!module.Dense, linear.IsFactorized);
            if (!module.Dense) Assert.Equal(module.Rank, linear.Rank);
        }
        var stored = linears.Sum(l => l.ParameterCount);
        var dense = linears.Sum(l => l.OutFeatures * l.InFeatures);
        Assert.Equal(stored, report.Ratio.LinearParametersAfter);
        Assert.Equal(1 - (double)stored / dense, report.Ratio.AchievedLinearRatio, 12);
        Assert.InRange(report.Ratio.AchievedLinearRatio, 0.39, 0.45);
        Assert.True(report.Ratio.AchievedModelRatio < report.Ratio.AchievedLinearRatio);
        // One 0-based block number from the engine to the tool's renderers (which add 1 only for display).
        Assert.Contains(events, e => e.Stage == "compress" && e.Block == 0 && e.Blocks == model.BlockCount);
        Assert.Contains(events, e => e.Stage == "compress" && e.Block == model.BlockCount - 1);
        Assert.DoesNotContain(events, e => e.Block >= model.BlockCount);

        // The compressed model still computes something close to the original.
        var logits = ((IDecoderModel)model).Logits(ids);
        var original = ((IDecoderModel)reference).Logits(ids);
        Assert.True(logits.isfinite().all().item<bool>());
        var relative = (linalg.norm(logits - original) / linalg.norm(original)).item<float>();
        Assert.InRange(relative, 1e-6f, 0.9f);
    }

    [Theory]
    [InlineData("SVD-LLM")]
    [InlineData("AdaSVD")]
    [InlineData("LC-SVD")]
    [InlineData("SVD-LLM-V2")]
    public void Runs_are_deterministic_on_the_cpu(string methodName)
    {
        var options = new CompressionOptions { Method = CompressionMethods.Parse(methodName), Ratio = 0.5, BatchSize = 3, AdaSvdBucketSize = methodName == "AdaSVD" ? 2 : 1 };
        float[] Run() => TestModels.CompressedFactors("llama", options, 6, 24, 9).Factors;
        var first = Run();
        Assert.NotEmpty(first);
        Assert.Equal(first, Run());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Decomposition_overlap_changes_nothing_but_the_schedule(bool lazyWeights)
    {
        var (serial, overlapped) = TestModels.CompressSerialAndOverlapped(
            new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.5, BatchSize = 3 }, 6, 24, 9,
            new DecoderModelOptions { LazyBlockWeights = lazyWeights, StreamBlocks = lazyWeights });
        Assert.Equal(serial.Factors.Length, overlapped.Factors.Length);
        var worst = serial.Factors.Zip(overlapped.Factors, (a, b) => Math.Abs(a - b) / Math.Max(1e-3, Math.Abs(a))).Max();
        Assert.True(worst < 1e-4, $"overlapped factors differ from serial ones by {worst:E2} (relative)");
        Assert.Equal(serial.Report.Modules.Select(m => (m.Name, m.Rank)), overlapped.Report.Modules.Select(m => (m.Name, m.Rank)));
    }

    [Theory]
    [InlineData("SVD-LLM")]
    [InlineData("AdaSVD")]
    [InlineData("LC-SVD")]
    public void A_rank_multiple_holds_for_every_factorised_linear(string methodName)
    {
        using var model = TestModels.LoadFixture("llama");
        using var scope = NewDisposeScope();
        var report = TestModels.CompressOnRandomIds(model, 8, 32, 5,
            new CompressionOptions { Method = CompressionMethods.Parse(methodName), Ratio = 0.4, BatchSize = 4, RankMultiple = 8 });
        var factorised = Enumerable.Range(0, model.BlockCount).SelectMany(b => model.BlockLinears(b)).Where(l => l.IsFactorized).ToArray();
        Assert.NotEmpty(factorised);
        Assert.All(factorised, l => Assert.True(l.Rank % 8 == 0, $"{l.Name}: rank {l.Rank}"));
        Assert.Equal(8, report.Options.RankMultiple);
    }

    [Fact]
    public void LcSvd_block_error_is_never_above_svd_llm_on_the_same_block()
    {
        using var model = TestModels.LoadFixture("llama");
        using var scope = NewDisposeScope();
        var report = TestModels.CompressOnRandomIds(model, 12, 32, 13,
            new CompressionOptions { Method = CompressionMethod.LcSvd, Ratio = 0.6, BatchSize = 4 });
        Assert.All(report.Blocks, b =>
        {
            Assert.NotNull(b.OutputError);
            Assert.NotNull(b.SvdLlmOutputError);
            Assert.True(b.OutputError <= b.SvdLlmOutputError, $"block {b.Block}: {b.OutputError} > {b.SvdLlmOutputError}");
        });
    }

    [Fact]
    public void LcSvd_refit_alone_lowers_the_first_blocks_output_error_against_svd_llm()
    {
        // Same ranks (no search), no guard, same block input (block 0 sees the embeddings in both): the collaborative
        // refit must beat SVD-LLM's layer-by-layer whitening on the block output it optimises.
        using var original = TestModels.LoadFixture("llama");
        using var lc = TestModels.LoadFixture("llama");
        using var svdLlm = TestModels.LoadFixture("llama");
        using var scope = NewDisposeScope();
        var ids = TestModels.RandomIds(16, 32, 256, 17);
        Compressor.Compress(lc, ids, new CompressionOptions { Method = CompressionMethod.LcSvd, Ratio = 0.6, LcSvdRankSearch = false, LcSvdGuard = false, LcSvdRidge = 1e-4 });
        Compressor.Compress(svdLlm, ids, new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.6 });
        var hidden = ((IDecoderModel)original).Embed(ids);
        var lcError = TestModels.BlockError(original, lc, 0, hidden);
        var svdLlmError = TestModels.BlockError(original, svdLlm, 0, hidden);
        Assert.True(lcError < svdLlmError, $"LC-SVD block-0 error {lcError} ≥ SVD-LLM {svdLlmError}");
    }

    [Fact]
    public void AdaCR_allocation_keeps_the_budget_on_a_real_model()
    {
        using var model = TestModels.LoadFixture("llama");
        using var scope = NewDisposeScope();
        var report = TestModels.CompressOnRandomIds(model, 8, 32, 21,
            new CompressionOptions { Method = CompressionMethod.AdaSvd, Ratio = 0.4, AdaSvdRetentionGap = 0.2 });
        Assert.Equal(0.6, report.Blocks.Average(b => b.Retention!.Value), 12);
        Assert.NotEqual(report.Blocks[0].Retention, report.Blocks[1].Retention);
        Assert.Equal(1.0, report.Blocks.Average(b => b.Importance!.Value), 12);
        Assert.All(report.Modules, m => Assert.True(m.ObjectiveAfter <= m.ObjectiveBefore + 1e-9, $"{m.Name}: adaComp raised the objective"));
    }

    [Fact]
    public void Bad_inputs_fail_with_their_codes()
    {
        using var model = TestModels.LoadFixture("llama");
        using var scope = NewDisposeScope();
        var ids = TestModels.RandomIds(4, 16, 256, 1);
        Assert.Equal(ErrorCodes.BadRatio, Assert.Throws<LrkException>(() =>
            Compressor.Compress(model, ids, new CompressionOptions { Method = CompressionMethod.Svd, Ratio = 1.2 })).Code);
        Assert.Equal(ErrorCodes.DataTooShort, Assert.Throws<LrkException>(() =>
            Compressor.Compress(model, null, new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.2 })).Code);
        Assert.Equal(ErrorCodes.BadMethodOption, Assert.Throws<LrkException>(() =>
            Compressor.Compress(model, ids, new CompressionOptions { Method = CompressionMethod.AdaSvd, Ratio = 0.2, AdaSvdBucketSize = 3 })).Code);
        Assert.Equal(ErrorCodes.BadArgument, Assert.Throws<LrkException>(() =>
            TestModels.CompressOnRandomIds(model, 2, 200, 1, new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.2 })).Code);
        Assert.False(model.BlockLinears(0)[0].IsFactorized, "a rejected run leaves the model untouched");
    }

    [Fact]
    public void Cancellation_stops_between_blocks()
    {
        using var model = TestModels.LoadFixture("llama");
        using var scope = NewDisposeScope();
        using var cancellation = new CancellationTokenSource();
        var progress = new SynchronousProgress(e =>
        {
            if (e.Block == 1) cancellation.Cancel(); // the second block (0-based)
        });
        Assert.ThrowsAny<OperationCanceledException>(() => Compressor.Compress(model, TestModels.RandomIds(4, 16, 256, 1),
            new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.2 }, progress, cancellation.Token));
        Assert.True(model.BlockLinears(0)[0].IsFactorized);
        Assert.False(model.BlockLinears(1)[0].IsFactorized);
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Stories260K_accounting_counts_tied_embeddings_once()
    {
        using var model = TestModels.LoadStories260K();
        using var scope = NewDisposeScope();
        var report = Compressor.Compress(model, null, new CompressionOptions { Method = CompressionMethod.Svd, Ratio = 0.2 });
        // 5 blocks × (q 64² + k 32·64 + v 32·64 + o 64² + 3 · 172·64) = 5 × 45,312 (the "260K" parameters with the rest); others: embedding 512·64 once,
        // 11 RMSNorm weights of 64.
        Assert.Equal(5 * 45_312, report.Ratio.LinearParametersBefore);
        Assert.Equal(5 * 45_312 + 512 * 64 + 11 * 64, report.Ratio.ModelParametersBefore);
        // Ranks at ρ = 0.8: q/o floor(4096·0.8/128) = 25, k/v floor(2048·0.8/96) = 17, MLP floor(11008·0.8/236) = 37.
        Assert.Equal([25L, 17, 17, 25, 37, 37, 37], report.Modules.Where(m => m.Block == 0).Select(m => m.Rank));
    }

    private sealed class SynchronousProgress(Action<ProgressUpdate> action) : IProgress<ProgressUpdate>
    {
        public void Report(ProgressUpdate value) => action(value);
    }
}
