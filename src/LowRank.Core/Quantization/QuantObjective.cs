using static TorchSharp.torch;

namespace LowRank.Quantization;

/// <summary>The calibration objective every quantizer here is judged by: <c>tr(E H Eᵀ) = ‖E X‖²_F</c> for an error
/// E [rows, cols] of a matrix applied to inputs with Gram H = X Xᵀ [cols, cols].</summary>
public static class QuantObjective
{
    public static double Of(Tensor error, Tensor hessian)
    {
        using var scope = NewDisposeScope();
        var e = error.to(ScalarType.Float64, hessian.device);
        return (matmul(e, hessian.to(ScalarType.Float64)) * e).sum().item<double>();
    }
}
