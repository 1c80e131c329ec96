using static TorchSharp.torch;

namespace LowRank.Quantization;

/// <summary>
/// The uniform grid of one group (GPTQ's <c>Quantizer.find_params</c>, Frantar et al. 2022, reference code): its scale
/// s and zero point z from the group's values, and the codes of values on it. Everything is fp64; scales are rounded to
/// fp16 (what the artifact stores) before any code is made — upwards where rounding to nearest would shrink them, so
/// that no value leaves the grid (int8: |w| / s ≤ 127 stays true, and every error is at most s/2). All-zero groups get
/// s = 1 (every code is then the zero point).
/// </summary>
public static class QuantGrid
{
    /// <summary>fp16's smallest positive (subnormal) value, 2^−24: the smallest scale that can be stored.</summary>
    public const double MinScale = 5.9604644775390625e-08;

    /// <summary>Scale and zero point of each group: <paramref name="values"/> [..., n] → s, z [...] (fp64; z integer-valued,
    /// 0 for int8, 2^(b−1) for the symmetric group formats).</summary>
    public static (Tensor Scale, Tensor Zero) Fit(Tensor values, QuantFormat format)
    {
        using var scope = NewDisposeScope();
        var v = values.to(ScalarType.Float64);
        Tensor scale, zero;
        if (format.PerChannel)
        {
            scale = Stored(v.abs().amax([-1]) / 127.0);
            zero = zeros_like(scale);
        }
        else if (!format.ZeroPoints)
        {
            scale = Stored(v.abs().amax([-1]) * 2.0 / format.MaxCode);
            zero = full_like(scale, 1 << (format.Bits - 1));
        }
        else
        {
            var low = v.amin([-1]).clamp_max(0);
            var high = v.amax([-1]).clamp_min(0);
            scale = Stored((high - low) / format.MaxCode);
            zero = (-low / scale).round().clamp(0, format.MaxCode);
        }
        return (scale.MoveToOuterDisposeScope(), zero.MoveToOuterDisposeScope());
    }

    /// <summary>Integer codes of <paramref name="values"/> [..., n] on the grid s, z [...] broadcast over the last dimension
    /// (or already broadcastable): signed q in [−127, 127] for int8, c in [0, 2^b − 1] otherwise (fp64, integer-valued).</summary>
    public static Tensor Codes(Tensor values, Tensor scale, Tensor zero, QuantFormat format)
    {
        using var scope = NewDisposeScope();
        var q = (values.to(ScalarType.Float64) / scale).round() + zero;
        var codes = format.PerChannel ? q.clamp(-127, 127) : q.clamp(0, format.MaxCode);
        return codes.MoveToOuterDisposeScope();
    }

    /// <summary>The values the codes stand for: (c − z)·s.</summary>
    public static Tensor Values(Tensor codes, Tensor scale, Tensor zero) => (codes - zero) * scale;

    /// <summary>Rounds scales up to fp16 values (the stored precision): the nearest fp16 value, or the next one above
    /// where the nearest is smaller. Zero scales (all-zero groups) become 1.</summary>
    internal static Tensor Stored(Tensor scale)
    {
        using var scope = NewDisposeScope();
        var safe = scale.masked_fill(scale.eq(0), 1.0).clamp_min(MinScale);
        var nearest = safe.to(ScalarType.Float16).to(ScalarType.Float64);
        // One unit in the last place of an fp16 value x: 2^(floor(log2 x) − 10), and 2^−24 among the subnormals.
        var ulp = pow(2.0, (nearest.log2().floor() - 10).clamp_min(-24));
        return where(nearest.lt(safe), nearest + ulp, nearest).MoveToOuterDisposeScope();
    }
}
