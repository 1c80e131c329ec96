namespace LowRank.Models;

/// <summary>
/// The rotary inverse frequencies of a LLaMA-family config (HF <c>_compute_default_rope_parameters</c>, with the
/// "linear" and "llama3" <c>rope_scaling</c> adjustments applied; "dynamic" changes θ only past the trained length, see
/// <see cref="ForTheta"/>). Shared by the TorchSharp forward and the ONNX exporter so both rotate by the same angles.
/// </summary>
public static class RotaryFrequencies
{
    /// <summary>inv_freq[i] = 1 / θ^(2i/d), evaluated in fp32 as HF does; head_dim/2 values.</summary>
    public static double[] ForTheta(double theta, int headDim)
    {
        if (headDim % 2 != 0) throw new LrkException(ErrorCodes.BadConfig, $"head_dim must be even for rotary embeddings (got {headDim})");
        return Enumerable.Range(0, headDim / 2).Select(i => (double)(1.0f / MathF.Pow((float)theta, (float)(2 * i) / headDim))).ToArray();
    }

    /// <summary>The inverse frequencies for positions within max_position_embeddings (rope_scaling applied).</summary>
    public static double[] Base(ModelConfig config)
    {
        var frequencies = ForTheta(config.RopeTheta, config.HeadDim);
        if (config.RopeScaling is not { } scaling) return frequencies;
        return scaling.Type switch
        {
            "default" or "dynamic" => frequencies,
            "linear" => frequencies.Select(f => (double)(float)(f / scaling.Factor)).ToArray(),
            "llama3" => Llama3(frequencies, scaling),
            _ => throw new LrkException(ErrorCodes.UnsupportedArchitecture,
                $"rope_scaling type '{scaling.Type}' is not supported (supported: linear, dynamic, llama3)"),
        };
    }

    /// <summary>
    /// LLaMA 3.1 frequency adjustment (HF _compute_llama3_parameters): wavelengths longer than
    /// original_max/low_freq_factor are slowed by factor, shorter than original_max/high_freq_factor kept,
    /// and those between interpolated smoothly.
    /// </summary>
    private static double[] Llama3(double[] inverseFrequencies, RopeScaling scaling)
    {
        var factor = (float)scaling.Factor;
        var low = (float)(scaling.LowFreqFactor ?? 1.0);
        var high = (float)(scaling.HighFreqFactor ?? 4.0);
        var oldContext = (float)(scaling.OriginalMaxPositions ?? 8192);
        var lowFreqWavelen = oldContext / low;
        var highFreqWavelen = oldContext / high;
        return inverseFrequencies.Select(f =>
        {
            var inv = (float)f;
            var wavelen = 2 * MathF.PI / inv;
            if (wavelen < highFreqWavelen) return (double)inv;
            if (wavelen > lowFreqWavelen) return (double)(inv / factor);
            var smooth = (oldContext / wavelen - low) / (high - low);
            return (double)((1 - smooth) * inv / factor + smooth * inv);
        }).ToArray();
    }
}
