using LowRank.Compression;
using LowRank.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Compression;

/// <summary>AdaSVD's default pipeline, which refits a block group by group on the inputs the compressed model feeds it.</summary>
public sealed class SequentialAdaSvdTests
{
    public SequentialAdaSvdTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("opt")]
    [InlineData("gpt2")]
    public void Every_layer_is_fitted_to_the_inputs_the_compressed_model_feeds_it(string family)
    {
        using var model = TestModels.LoadFixture(family);
        using var reference = TestModels.LoadFixture(family);
        using var scope = NewDisposeScope();
        var ids = TestModels.RandomIds(8, 32, model.Config.VocabSize, 21);
        var report = Compressor.Compress(model, ids, new CompressionOptions { Method = CompressionMethod.AdaSvd, Ratio = 0.4, BatchSize = 4 });
        Assert.StartsWith("once", report.OriginalPass);

        // Replay the finished model on the calibration ids and measure every layer's error on the inputs it really gets:
        // ‖W X − A B X‖² / ‖W X‖² must be the objective adaComp reported after its refit. Had a layer been fitted to inputs
        // from the block's dense weights (or from the original model), the two would differ far beyond rounding.
        var hidden = ((IDecoderModel)model).Embed(ids);
        var checkedLayers = 0;
        for (var block = 0; block < model.BlockCount; block++)
        {
            var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            hidden = model.RunBlock(block, hidden, (linear, input) => inputs[linear.Name] = input.reshape(-1, input.shape[^1]).to(float64).DetachFromDisposeScope());
            var dense = reference.BlockLinears(block).ToDictionary(l => l.Name);
            foreach (var linear in model.BlockLinears(block).Where(l => l.IsFactorized))
            {
                var module = report.Modules.Single(m => m.Name == linear.Name);
                var x = inputs[linear.Name];
                var w = dense[linear.Name].Weight!.to(float64);
                var target = matmul(x, w.T);
                var output = matmul(matmul(x, linear.B!.to(float64).T), linear.A!.to(float64).T);
                var measured = ((target - output).square().sum() / target.square().sum()).item<double>();
                Assert.NotNull(module.ObjectiveAfter);
                Assert.True(Math.Abs(measured - module.ObjectiveAfter!.Value) <= 1e-4 * Math.Max(1, measured),
                    $"{linear.Name}: error on the compressed model's inputs {measured:E6}, reported {module.ObjectiveAfter:E6}");
                Assert.True(module.ObjectiveAfter <= module.ObjectiveBefore! + 1e-12, $"{linear.Name}: adaComp raised its objective");
                checkedLayers++;
            }
        }
        Assert.True(checkedLayers >= 4 * model.BlockCount, $"only {checkedLayers} factorised layers");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void One_original_pass_and_one_per_block_give_the_same_factors(bool lazyWeights)
    {
        // 8 importance samples in batches of 4: both ways measure importance on the very same batches.
        (float[] Factors, CompressionReport Report) Run(AdaSvdOriginalPass pass) => TestModels.CompressedFactors("llama",
            new CompressionOptions { Method = CompressionMethod.AdaSvd, Ratio = 0.5, BatchSize = 4, AdaSvdImportanceSamples = 8, AdaSvdOriginalPass = pass },
            12, 24, 31, new DecoderModelOptions { LazyBlockWeights = lazyWeights });
        var once = Run(AdaSvdOriginalPass.Once);
        var perBlock = Run(AdaSvdOriginalPass.PerBlock);
        Assert.StartsWith("once", once.Report.OriginalPass);
        Assert.StartsWith("per block", perBlock.Report.OriginalPass);
        Assert.False(once.Report.Seconds.ContainsKey("profile"));
        Assert.True(perBlock.Report.Seconds.ContainsKey("profile"));
        Assert.NotEmpty(once.Factors);
        Assert.Equal(once.Report.Blocks.Select(b => b.Importance), perBlock.Report.Blocks.Select(b => b.Importance));
        Assert.Equal(once.Report.Modules.Select(m => (m.Name, m.Rank)), perBlock.Report.Modules.Select(m => (m.Name, m.Rank)));
        Assert.Equal(once.Factors, perBlock.Factors);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Making_the_next_blocks_starts_beside_this_block_changes_nothing_but_the_schedule(bool lazyWeights)
    {
        var (serial, overlapped) = TestModels.CompressSerialAndOverlapped(
            new CompressionOptions { Method = CompressionMethod.AdaSvd, Ratio = 0.5, BatchSize = 4 }, 8, 24, 71,
            new DecoderModelOptions { LazyBlockWeights = lazyWeights });
        Assert.Equal(serial.Factors, overlapped.Factors);
    }

    [Fact]
    public void The_original_target_still_runs_the_two_stream_pipeline()
    {
        using var model = TestModels.LoadFixture("llama");
        using var scope = NewDisposeScope();
        var report = TestModels.CompressOnRandomIds(model, 8, 24, 51,
            new CompressionOptions { Method = CompressionMethod.AdaSvd, Ratio = 0.4, BatchSize = 4, AdaSvdTarget = AdaCompTarget.Original });
        Assert.Equal("two streams", report.OriginalPass);
        Assert.All(report.Modules.Where(m => !m.Dense), m => Assert.True(m.ObjectiveAfter <= m.ObjectiveBefore! + 1e-12));
    }

    [Theory]
    [InlineData(4096, 4)]
    [InlineData(11008, 8)]
    [InlineData(2100, 2)]
    [InlineData(1000, 1)]
    [InlineData(28672, 8)]
    public void Symmetric_gram_strips_tile_the_rows_with_aligned_starts(long n, int expected)
    {
        var panels = CudaNative.SymmetricPanels(n);
        Assert.Equal(expected, panels.Length);
        Assert.Equal(0, panels[0].Lo);
        for (var i = 1; i < panels.Length; i++) Assert.Equal(panels[i - 1].Lo + panels[i - 1].Rows, panels[i].Lo);
        Assert.Equal(n, panels[^1].Lo + panels[^1].Rows);
        Assert.All(panels, p => Assert.True(p.Lo % 64 == 0 && p.Rows > 0));
    }

    [Fact]
    public void Rank_alignment_pads_with_zeros_and_keeps_the_product()
    {
        using var scope = NewDisposeScope();
        var generator = new TorchSharp.torch.Generator(61);
        var a = randn([40, 13], generator: generator);
        var b = randn([13, 24], generator: generator);
        var x = randn([5, 7, 24], generator: generator);
        var (paddedA, paddedB) = LinearWeight.AlignedFactors(a, b, rows: 35, force: true);
        Assert.Equal([40L, 16L], paddedA.shape);
        Assert.Equal([16L, 24L], paddedB.shape);
        Assert.Equal(0.0, paddedA.narrow(1, 13, 3).abs().sum().item<float>());
        Assert.Equal(0.0, paddedB.narrow(0, 13, 3).abs().sum().item<float>());
        var expected = nn.functional.linear(nn.functional.linear(x, b), a);
        var padded = nn.functional.linear(nn.functional.linear(x, paddedB), paddedA);
        Assert.True(allclose(expected, padded, rtol: 1e-6, atol: 1e-6));
        // On the CPU (and for few rows anywhere) the stored factors are used as they are.
        var (same, _) = LinearWeight.AlignedFactors(a, b, rows: 1 << 20);
        Assert.Same(a, same);
    }
}
