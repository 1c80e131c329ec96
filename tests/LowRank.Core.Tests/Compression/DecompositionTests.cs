using LowRank.Compression;
using LowRank.Torch;
using static LowRank.Tests.TestSupport.MathFixtures;
using static TorchSharp.torch;

namespace LowRank.Tests.Compression;

/// <summary>The per-layer math of every method, on seeded fp64 tensors (CPU).</summary>
public sealed class DecompositionTests
{
    public DecompositionTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [Theory]
    [InlineData(SvdAlgorithm.Direct, 48, 80)]
    [InlineData(SvdAlgorithm.GramEigh, 48, 80)]
    [InlineData(SvdAlgorithm.GramEigh, 90, 40)]
    public void Truncated_svd_costs_exactly_the_dropped_singular_values(SvdAlgorithm algorithm, long m, long n)
    {
        using var scope = NewDisposeScope();
        var w = Weight(m, n, 11);
        using var factors = Svd.Factorize(w, 12, algorithm);
        var error = Norm(w - factors.Product());
        Assert.Equal(factors.TruncationLoss, error, 9);
        var reference = linalg.svdvals(w);
        Assert.True(Norm(factors.SingularValues[..12] - reference[..12]) < 1e-11 * reference[0].item<double>());
    }

    [Theory]
    [InlineData(20, 7)]
    [InlineData(21, 21)]
    [InlineData(16, 4096)]
    public void Tiled_in_place_symmetrisation_gives_the_same_bits_as_the_out_of_place_mean(long n, long tile)
    {
        using var scope = NewDisposeScope();
        using var generator = new TorchSharp.torch.Generator(5, CPU);
        var h = randn([n, n], ScalarType.Float64, generator: generator);
        var expected = (h + h.T) * 0.5;
        var same = Whitening.SymmetrizeInPlace(h, tile);
        Assert.True(ReferenceEquals(same, h));
        Assert.True(h.eq(expected).all().item<bool>(), "the tiled in-place mean differs from (h + hᵀ)/2");
        Assert.True(h.eq(h.T).all().item<bool>());
    }

    [Fact]
    public void Gram_eigh_svd_matches_direct_svd_on_the_kept_subspace()
    {
        using var scope = NewDisposeScope();
        // Condition number ~1e6 like a whitened LLM weight.
        var (u, _, vh) = linalg.svd(Randn(256, 192, 3), fullMatrices: false);
        var spectrum = logspace(0, -6, 192, dtype: float64);
        var m = matmul(u * spectrum.unsqueeze(0), vh);
        foreach (var rank in new long[] { 16, 96, 180 })
        {
            using var direct = SvdKernel.Truncate(m, rank, SvdAlgorithm.Direct);
            using var gram = SvdKernel.Truncate(m, rank, SvdAlgorithm.GramEigh);
            var (da, db) = direct.BalancedFactors();
            var (ga, gb) = gram.BalancedFactors();
            var difference = Norm(matmul(da, db) - matmul(ga, gb)) / Norm(m);
            Assert.True(difference < 1e-9, $"rank {rank}: Gram-eigh product differs from direct SVD by {difference:E2}");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Whitening_makes_the_data_error_equal_the_dropped_singular_values(bool eigen)
    {
        using var scope = NewDisposeScope();
        var w = Weight(40, 64, 21);
        var x = Inputs(64, 2000, 22);
        var h = matmul(x, x.T);
        const long rank = 20;
        using var factors = eigen
            ? SvdLlmV2.Factorize(w, h, rank, SvdAlgorithm.Direct, SvdLlm.DefaultWhiteningEpsilon)
            : SvdLlm.Factorize(w, h, rank, SvdAlgorithm.Direct, SvdLlm.DefaultWhiteningEpsilon, out _);
        var dataError = DataError(w, factors.A, factors.B, x);
        Assert.Equal(factors.TruncationLoss, dataError, 8);
        // And it beats the data-blind SVD at the same rank.
        using var plain = Svd.Factorize(w, rank, SvdAlgorithm.Direct);
        Assert.True(dataError < DataError(w, plain.A, plain.B, x));
    }

    [Fact]
    public void Cholesky_and_eigen_whitening_reach_the_same_optimum()
    {
        using var scope = NewDisposeScope();
        var w = Weight(32, 48, 31);
        var x = Inputs(48, 1000, 32);
        var h = matmul(x, x.T);
        using var cholesky = SvdLlm.Factorize(w, h, 10, SvdAlgorithm.Direct, 1e-12, out var kind);
        using var eigen = SvdLlmV2.Factorize(w, h, 10, SvdAlgorithm.GramEigh, 1e-12);
        Assert.Equal(WhiteningKind.Cholesky, kind);
        Assert.True(Norm(cholesky.Product() - eigen.Product()) / Norm(w) < 1e-8);
    }

    [Fact]
    public void Non_positive_definite_gram_falls_back_and_still_factorizes()
    {
        using var scope = NewDisposeScope();
        var w = Weight(24, 64, 41);
        var x = Inputs(64, 40, 42);                 // 40 tokens < 64 channels: H is singular
        var h = matmul(x, x.T);
        h[5, 5] = h[5, 5] - 1e3;                     // and indefinite, like a Gram damaged by fp32 cancellation
        using var whitening = Whitening.Cholesky(h, 1e-8);
        Assert.NotEqual(WhiteningKind.Cholesky, whitening.Kind);
        Assert.True(whitening.Shift > 0 || whitening.Kind == WhiteningKind.Eigen);
        using var factors = SvdLlm.Factorize(w, matmul(x, x.T), 12, SvdAlgorithm.Direct, 1e-8, out var kind);
        Assert.NotEqual(WhiteningKind.Cholesky, kind);
        Assert.True(factors.A.isfinite().all().item<bool>() && factors.B.isfinite().all().item<bool>());
        // The factorisation is still near-optimal on the data: within 1% of the eigen (pseudo-inverse) optimum.
        using var eigen = SvdLlmV2.Factorize(w, matmul(x, x.T), 12, SvdAlgorithm.Direct, 1e-10);
        Assert.True(DataError(w, factors.A, factors.B, x) <= 1.01 * DataError(w, eigen.A, eigen.B, x) + 1e-9);
        // A zero Gram (no signal) degrades to plain SVD rather than failing.
        using var zero = Whitening.Cholesky(zeros(8, 8, dtype: float64), 1e-8);
        Assert.Equal(WhiteningKind.Identity, zero.Kind);
    }

    [Fact]
    public void Eigen_whitening_clamps_small_eigenvalues_and_stays_invertible()
    {
        using var scope = NewDisposeScope();
        var x = Inputs(32, 16, 51);                  // rank 16 Gram
        using var whitening = Whitening.Eigen(matmul(x, x.T), 1e-8);
        Assert.Equal(WhiteningKind.Eigen, whitening.Kind);
        Assert.True(whitening.ClampedEigenvalues >= 16);
        var w = Weight(10, 32, 52);
        Assert.True(Norm(whitening.Unwhiten(whitening.Whiten(w)) - w) / Norm(w) < 1e-6);
        using var full = SvdLlmV2.Factorize(w, matmul(x, x.T), 10, SvdAlgorithm.Direct, 1e-8);
        Assert.True(Norm(full.Product() - w) / Norm(w) < 1e-6, "full rank reproduces W");
    }

    [Fact]
    public void Asvd_scaling_is_undone_exactly_at_full_rank_and_truncation_cost_is_the_scaled_tail()
    {
        using var scope = NewDisposeScope();
        var w = Weight(30, 50, 61);
        var x = Inputs(50, 500, 62);
        var absMean = x.abs().mean([1]);
        using var full = Asvd.Factorize(w, absMean, Asvd.DefaultAlpha, 30, SvdAlgorithm.Direct);
        Assert.True(Norm(full.Product() - w) / Norm(w) < 1e-12);
        using var truncated = Asvd.Factorize(w, absMean, Asvd.DefaultAlpha, 8, SvdAlgorithm.Direct);
        var s = Asvd.Scaling(absMean, Asvd.DefaultAlpha);
        Assert.Equal(truncated.TruncationLoss, Norm((w - truncated.Product()) * s.unsqueeze(0)), 9);
        Assert.Equal(Math.Pow(absMean[3].item<double>(), 0.5) + 1e-6, s[3].item<double>(), 14);
    }

    [Fact]
    public void Fwsvd_weighting_is_undone_exactly_at_full_rank_and_truncation_cost_is_the_weighted_tail()
    {
        using var scope = NewDisposeScope();
        var w = Weight(36, 28, 71);
        var fisher = Randn(36, 28, 72).square() * logspace(-2, 2, 28, dtype: float64).unsqueeze(0);
        using var full = Fwsvd.Factorize(w, fisher, 28, SvdAlgorithm.GramEigh);
        Assert.True(Norm(full.Product() - w) / Norm(w) < 1e-10);
        using var truncated = Fwsvd.Factorize(w, fisher, 9, SvdAlgorithm.Direct);
        var d = Fwsvd.ColumnWeights(fisher);
        Assert.Equal(Math.Sqrt(fisher[.., 4].sum().item<double>()), d[4].item<double>(), 12);
        Assert.Equal(truncated.TruncationLoss, Norm((w - truncated.Product()) * d.unsqueeze(0)), 9);
        // A column without gradient keeps the undo finite.
        fisher[.., 0] = zeros(36, dtype: float64);
        using var withDeadColumn = Fwsvd.Factorize(w, fisher, 28, SvdAlgorithm.Direct);
        Assert.True(withDeadColumn.B.isfinite().all().item<bool>());
        Assert.True(Norm(withDeadColumn.Product() - w) / Norm(w) < 1e-6);
    }
}
