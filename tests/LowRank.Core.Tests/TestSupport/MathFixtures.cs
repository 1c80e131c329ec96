using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Tests.TestSupport;

/// <summary>Seeded fp64 test data shaped like real layers: anisotropic inputs (a few loud channels, as in LLM
/// activations) and weights with a decaying spectrum.</summary>
internal static class MathFixtures
{
    public static Tensor Randn(long rows, long cols, ulong seed) => randn([rows, cols], dtype: float64, generator: new Generator(seed));

    /// <summary>Inputs X [n, tokens] whose channel scales span two orders of magnitude, with correlated channels.</summary>
    public static Tensor Inputs(long n, long tokens, ulong seed)
    {
        var scales = logspace(-1, 1, n, dtype: float64);
        var mixing = eye(n, dtype: float64) + 0.3 * Randn(n, n, seed + 1000) / Math.Sqrt(n);
        return matmul(mixing, scales.unsqueeze(1) * Randn(n, tokens, seed));
    }

    /// <summary>A weight [m, n] with singular values decaying like 1/(1+i)^0.7 plus noise.</summary>
    public static Tensor Weight(long m, long n, ulong seed)
    {
        var (u, _, vh) = linalg.svd(Randn(m, n, seed), fullMatrices: false);
        var count = Math.Min(m, n);
        var spectrum = pow(arange(1, count + 1, dtype: float64), -0.7);
        return matmul(u * spectrum.unsqueeze(0), vh) + 0.01 * Randn(m, n, seed + 7);
    }

    public static double Norm(Tensor t) => linalg.norm(t).item<double>();

    /// <summary>‖(W − A·B)·X‖_F.</summary>
    public static double DataError(Tensor weight, Tensor a, Tensor b, Tensor x) => Norm(matmul(weight - matmul(a, b), x));
}
