using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace LowRank.Quantization;

/// <summary>Which quantizer turns floats into codes.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<Quantizer>))]
public enum Quantizer
{
    /// <summary>Round to nearest (<see cref="Rtn"/>): no data needed.</summary>
    Rtn,
    /// <summary>GPTQ's error compensation with the calibration inputs' Gram (<see cref="Gptq"/>); for factors, also the
    /// refit of A to the quantized B (<see cref="FactorQuantizer"/>).</summary>
    Gptq,
}

/// <summary>Quantized factors Â [out, k], B̂ [k, in] of one linear; owns both.</summary>
public sealed class QuantizedFactors(QuantizedMatrix a, QuantizedMatrix b) : IDisposable
{
    public QuantizedMatrix A { get; } = a;
    public QuantizedMatrix B { get; } = b;

    public long Bytes => A.Bytes + B.Bytes;

    /// <summary>Â·B̂ [out, in] in fp64.</summary>
    public Tensor Product()
    {
        using var scope = NewDisposeScope();
        return matmul(A.Dequantize(ScalarType.Float64), B.Dequantize(ScalarType.Float64)).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}

/// <summary>
/// Quantizes the factors of a low-rank linear <c>W ≈ A·B</c> (A [out, k], B [k, in]) for inputs x with Gram
/// <c>H = X Xᵀ</c>, so that <c>Â B̂ x</c> stays close to the target <c>T x</c> (T = the original W where the caller
/// has it, else A·B). With <see cref="Quantizer.Gptq"/> the factor quantized first is compensated in the other, as the
/// hybrid pipelines of the low-rank survey and of SVD-LLM/AdaSVD (SVD followed by GPTQ) suggest:
/// <list type="number">
/// <item>B is applied to x directly, so it is GPTQ-quantized with H: <c>B̂ = GPTQ(B; H)</c>.</item>
/// <item>A is re-fitted to the quantized B (least squares on the calibration data, which takes up B's rounding error):
/// <c>A' = argmin ‖(T − A' B̂) X‖² = T H B̂ᵀ (B̂ H B̂ᵀ)⁻¹</c>.</item>
/// <item>A sees the inputs B̂x, whose Gram is <c>G = B̂ H B̂ᵀ</c>: <c>Â = GPTQ(A'; G)</c>.</item>
/// </list>
/// Because A' is the least-squares optimum, the objective splits exactly:
/// <c>‖(T − ÂB̂)X‖² = ‖(T − A'B̂)X‖² + tr((A' − Â) G (A' − Â)ᵀ)</c>, the refit term plus GPTQ's own objective for A.
/// <see cref="Quantizer.Rtn"/> rounds both factors to nearest, with no data.
/// </summary>
public static class FactorQuantizer
{
    /// <summary>Ridge of the refit, relative to mean(diag G): only keeps the solve defined when B̂'s rows are dependent.</summary>
    public const double RefitRidge = 1e-8;

    public static QuantizedFactors Quantize(Tensor a, Tensor b, QuantFormat format, Quantizer quantizer, Tensor? hessian = null,
        Tensor? target = null, GptqOptions? options = null)
    {
        if (quantizer == Quantizer.Rtn) return new QuantizedFactors(Rtn.Quantize(a, format), Rtn.Quantize(b, format));
        if (hessian is null) throw new ArgumentException("GPTQ needs the inputs' Gram", nameof(hessian));
        using var scope = NewDisposeScope();
        var h = hessian.to(ScalarType.Float64);
        var device = h.device;
        var quantizedB = Gptq.Quantize(b.to(device), h, format, options);
        try
        {
            var bq = quantizedB.Dequantize(ScalarType.Float64);
            var t = target is not null ? target.to(ScalarType.Float64, device) : matmul(a.to(ScalarType.Float64, device), b.to(ScalarType.Float64, device));
            var g = matmul(matmul(bq, h), bq.T);
            g = (g + g.T) * 0.5;
            var cross = matmul(matmul(t, h), bq.T);                                 // T H B̂ᵀ [out, k]
            var ridge = RefitRidge * Math.Max(g.diagonal().mean().item<double>(), double.Epsilon);
            var refit = linalg.solve(g + eye(g.shape[0], dtype: ScalarType.Float64, device: device) * ridge, cross.T).T;
            var quantizedA = Gptq.Quantize(refit, g, format, options);
            return new QuantizedFactors(quantizedA, quantizedB);
        }
        catch
        {
            quantizedB.Dispose();
            throw;
        }
    }
}
