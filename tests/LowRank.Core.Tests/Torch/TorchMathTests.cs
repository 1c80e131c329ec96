using LowRank.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Tests.Torch;

/// <summary>Real libtorch math on the CPU, through the same backend loader the tool uses.</summary>
public sealed class TorchMathTests
{
    public TorchMathTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private static Tensor Random(long rows, long cols, long seed) =>
        randn([rows, cols], dtype: float64, generator: new Generator((ulong)seed));

    [Fact]
    public void Svd_reconstructs_and_has_orthonormal_factors()
    {
        using var scope = NewDisposeScope();
        var a = Random(96, 64, 1);
        var (u, s, vh) = linalg.svd(a, fullMatrices: false);
        var reconstructed = matmul(u * s.unsqueeze(0), vh);
        Assert.True((linalg.norm(reconstructed - a) / linalg.norm(a)).item<double>() < 1e-12);
        Assert.True(linalg.norm(matmul(u.T, u) - eye(64, dtype: float64)).item<double>() < 1e-12);
        var sorted = s.data<double>().ToArray();
        Assert.Equal(sorted.OrderByDescending(x => x), sorted);
    }

    [Fact]
    public void Truncated_svd_error_equals_the_dropped_singular_values()
    {
        using var scope = NewDisposeScope();
        var a = Random(80, 50, 2);
        var (u, s, vh) = linalg.svd(a, fullMatrices: false);
        const int k = 20;
        var truncated = matmul(u[.., ..k] * s[..k].unsqueeze(0), vh[..k]);
        var error = linalg.norm(a - truncated).item<double>();
        var dropped = Math.Sqrt(s[k..].pow(2).sum().item<double>());
        Assert.Equal(dropped, error, 10);
    }

    [Fact]
    public void Cholesky_factor_reproduces_a_gram_matrix()
    {
        using var scope = NewDisposeScope();
        var x = Random(32, 200, 3);
        var gram = matmul(x, x.T);
        var l = linalg.cholesky(gram);
        Assert.True((linalg.norm(matmul(l, l.T) - gram) / linalg.norm(gram)).item<double>() < 1e-13);
        Assert.Equal(0.0, triu(l, 1).abs().max().item<double>());
    }

    [Fact]
    public void Cholesky_of_a_singular_matrix_fails_instead_of_returning_garbage()
    {
        using var scope = NewDisposeScope();
        var x = Random(32, 8, 4); // rank 8 < 32
        var gram = matmul(x, x.T);
        var (_, info) = linalg.cholesky_ex(gram);
        Assert.NotEqual(0, info.item<int>());
    }

    [Fact]
    public void Pinv_satisfies_the_moore_penrose_conditions()
    {
        using var scope = NewDisposeScope();
        var a = matmul(Random(40, 10, 5), Random(10, 30, 6)); // 40x30 of rank 10
        var p = linalg.pinv(a);
        Assert.True((linalg.norm(matmul(matmul(a, p), a) - a) / linalg.norm(a)).item<double>() < 1e-10);
        Assert.True((linalg.norm(matmul(matmul(p, a), p) - p) / linalg.norm(p)).item<double>() < 1e-10);
        var ap = matmul(a, p);
        Assert.True(linalg.norm(ap - ap.T).item<double>() < 1e-10);
    }

    [Fact]
    public void Doctor_self_test_passes_on_cpu()
    {
        var report = Doctor.Run(DeviceRequest.Cpu);
        Assert.Equal("pass", report.SelfTest);
        Assert.True(report.Devices[0].SvdRelErrorFp32 < Doctor.SelfTestTolerance);
        Assert.True(report.Devices[0].SvdRelErrorFp64 < 1e-12);
    }
}
