using static TorchSharp.torch;

namespace LowRank.Quantization;

/// <summary>
/// Round-to-nearest: every value goes to the nearest point of its group's grid (<see cref="QuantGrid"/>), with no
/// regard for the data the matrix will be applied to. The baseline every quantization paper starts from (GPTQ, Table 1:
/// "RTN"), and what <see cref="Gptq"/> is measured against.
/// </summary>
public static class Rtn
{
    /// <summary>Quantizes <paramref name="weight"/> [rows, cols] (any float dtype, any device).</summary>
    public static QuantizedMatrix Quantize(Tensor weight, QuantFormat format)
    {
        if (weight.dim() != 2) throw new ArgumentException($"weight must be [rows, cols] (got [{string.Join(",", weight.shape)}])");
        using var scope = NewDisposeScope();
        var rows = weight.shape[0];
        var cols = weight.shape[1];
        var w = weight.to(ScalarType.Float64);
        if (format.PerChannel)
        {
            var (s, z) = QuantGrid.Fit(w, format);
            var q = QuantGrid.Codes(w, s.unsqueeze(1), z.unsqueeze(1), format);
            return QuantizedMatrix.FromCodes(format, q, s, null);
        }
        var groups = format.Groups(cols);
        var padded = groups * format.GroupSize;
        // Zero padding never moves a group's grid: its range always contains 0.
        var grouped = (padded > cols ? nn.functional.pad(w, [0, padded - cols]) : w).reshape(rows, groups, format.GroupSize);
        var (scale, zero) = QuantGrid.Fit(grouped, format);
        var codes = QuantGrid.Codes(grouped, scale.unsqueeze(2), zero.unsqueeze(2), format).reshape(rows, padded).narrow(1, 0, cols);
        return QuantizedMatrix.FromCodes(format, codes, scale, format.ZeroPoints ? zero : null);
    }
}
