using LowRank.Compression;
using static TorchSharp.torch;

namespace LowRank.Artifacts;

/// <summary>The dtype factor tensors are stored in (<c>--factor-dtype fp32|fp16|bf16</c>).</summary>
public enum FactorDtype
{
    Float32,
    Float16,
    BFloat16,
}

public static class FactorDtypes
{
    /// <summary>The accepted spellings, for help and error messages.</summary>
    public static IReadOnlyList<string> Names => FactorDtypeNames.Float;

    /// <summary>Parses fp32/fp16/bf16 (also float32/float16/bfloat16, f32/f16, half), or fails with <see cref="ErrorCodes.BadArgument"/>.</summary>
    public static FactorDtype Parse(string text) => TryParse(text, out var dtype)
        ? dtype
        : throw new LrkException(ErrorCodes.BadArgument, $"unknown factor dtype '{text}': use one of {string.Join(", ", Names)}");

    public static bool TryParse(string? text, out FactorDtype dtype)
    {
        FactorDtypeNames.TryCanonical(text, out var canonical);
        (var known, dtype) = canonical switch
        {
            "fp32" => (true, FactorDtype.Float32),
            "fp16" => (true, FactorDtype.Float16),
            "bf16" => (true, FactorDtype.BFloat16),
            _ => (false, FactorDtype.Float32),
        };
        return known;
    }

    /// <summary>The float dtype of a factor storage, or null for a quantized one (<see cref="FactorStorage.IsQuantized"/>).</summary>
    public static FactorDtype? FloatDtype(this FactorStorage storage) => TryParse(storage.Canonical, out var dtype) ? dtype : null;

    /// <summary>The dtype of an HF config's <c>torch_dtype</c> ("float16", …), or null when it is none of the three.</summary>
    public static FactorDtype? FromTorchDtype(string? torchDtype) => torchDtype switch
    {
        "float32" => FactorDtype.Float32,
        "float16" => FactorDtype.Float16,
        "bfloat16" => FactorDtype.BFloat16,
        _ => null,
    };

    public static ScalarType ToScalarType(this FactorDtype dtype) => dtype switch
    {
        FactorDtype.Float16 => ScalarType.Float16,
        FactorDtype.BFloat16 => ScalarType.BFloat16,
        _ => ScalarType.Float32,
    };

    /// <summary>The PyTorch name, as HF configs write <c>torch_dtype</c>: float32, float16, bfloat16.</summary>
    public static string TorchName(this FactorDtype dtype) => dtype switch
    {
        FactorDtype.Float16 => "float16",
        FactorDtype.BFloat16 => "bfloat16",
        _ => "float32",
    };

    /// <summary>The short name the command line uses: fp32, fp16, bf16.</summary>
    public static string ShortName(this FactorDtype dtype) => dtype switch
    {
        FactorDtype.Float16 => "fp16",
        FactorDtype.BFloat16 => "bf16",
        _ => "fp32",
    };
}
