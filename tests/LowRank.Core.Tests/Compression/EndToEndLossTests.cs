using LowRank.Compression;
using LowRank.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Compression;

public sealed class EndToEndLossTests
{
    public EndToEndLossTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [Fact]
    public void The_kl_of_one_changed_block_is_that_of_the_whole_model_with_the_block_changed()
    {
        using var model = TestModels.LoadFixture("llama");
        using var changed = TestModels.LoadFixture("llama");
        using var reference = TestModels.LoadFixture("llama");
        // The other copy of the model, changed the same way and run whole: the same KL.
        using var scope = NewDisposeScope();
        var ids = TestModels.RandomIds(10, 20, model.Config.VocabSize, 7);
        using var run = new CompressionRun(model, new CompressionOptions { Method = CompressionMethod.LcSvd, Ratio = 0.5, BatchSize = 3 }, ids, null, CancellationToken.None);
        using var loss = new EndToEndLoss(run, samples: 6);
        Assert.Equal(6, loss.Samples);
        Assert.True(Math.Abs(loss.Kl(0)) < 1e-6, $"unchanged model: KL {loss.Kl(0)}");
        loss.Advance(0);

        // Block 1 truncated (plain SVD at rank 2) in place, and the same in a second copy of the model.
        var linears = model.BlockLinears(1);
        using var weights = new BlockWeights(linears);
        foreach (var (linear, other) in linears.Zip(changed.BlockLinears(1)))
        {
            var (u, s, vh) = linalg.svd(linear.Weight!, fullMatrices: false);
            var a = u[.., ..2] * s[..2].unsqueeze(0);
            var b = vh[..2];
            weights.SetFactors(linear.Name, a, b);
            other.Factorize(a.clone(), b.clone());
        }
        var kl = loss.Kl(1);
        var measured = WholeModelKl(reference, changed, ids.narrow(0, 0, 6));
        Assert.True(kl > 1e-4, $"KL {kl}");
        Assert.True(Math.Abs(kl - measured) <= 1e-4 * measured, $"end-to-end KL {kl:E6}, diagnosis {measured:E6}");
        weights.ClearFactors();
        Assert.True(Math.Abs(loss.Kl(1)) < 1e-6, "restored block");
        Assert.Throws<InvalidOperationException>(() => loss.Kl(2));
    }

    /// <summary>Mean KL(reference ‖ changed) per predicted token of full forward passes.</summary>
    private static double WholeModelKl(IDecoderModel reference, IDecoderModel changed, Tensor ids)
    {
        using var scope = NewDisposeScope();
        var p = nn.functional.log_softmax(reference.Logits(ids).to(float64), -1).narrow(1, 0, ids.shape[1] - 1);
        var q = nn.functional.log_softmax(changed.Logits(ids).to(float64), -1).narrow(1, 0, ids.shape[1] - 1);
        return ((p.exp() * (p - q)).sum() / (ids.shape[0] * (ids.shape[1] - 1))).item<double>();
    }
}
