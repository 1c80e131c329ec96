using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// The dtype names of the safetensors format (<c>"F32"</c>, <c>"BF16"</c>, …), their sizes, and the TorchSharp
/// scalar types they map to. Every dtype the format declares is known (so a file holding, say, U32 or F8 tensors
/// still opens and can be inspected); only those TorchSharp has a scalar type for can be loaded into tensors.
/// </summary>
public static class SafeTensorsDtypes
{
    private static readonly Dictionary<string, (int Bytes, ScalarType? Torch)> Table = new(StringComparer.Ordinal)
    {
        ["BOOL"] = (1, ScalarType.Bool),
        ["U8"] = (1, ScalarType.Byte),
        ["I8"] = (1, ScalarType.Int8),
        ["F8_E5M2"] = (1, null),
        ["F8_E4M3"] = (1, null),
        ["F8_E8M0"] = (1, null),
        ["I16"] = (2, ScalarType.Int16),
        ["U16"] = (2, null),
        ["F16"] = (2, ScalarType.Float16),
        ["BF16"] = (2, ScalarType.BFloat16),
        ["I32"] = (4, ScalarType.Int32),
        ["U32"] = (4, null),
        ["F32"] = (4, ScalarType.Float32),
        ["C64"] = (8, ScalarType.ComplexFloat32),
        ["F64"] = (8, ScalarType.Float64),
        ["I64"] = (8, ScalarType.Int64),
        ["U64"] = (8, null),
    };

    /// <summary>All dtype names the reader accepts, for error messages.</summary>
    public static IReadOnlyCollection<string> Known => Table.Keys;

    /// <summary>Bytes per element of a safetensors dtype; false for a name the format does not define.</summary>
    public static bool TryGetElementSize(string dtype, out int bytes)
    {
        if (Table.TryGetValue(dtype, out var entry))
        {
            bytes = entry.Bytes;
            return true;
        }
        bytes = 0;
        return false;
    }

    /// <summary>The TorchSharp scalar type of a safetensors dtype, or null when TorchSharp has none (U16/U32/U64, F8).</summary>
    public static ScalarType? ToScalarType(string dtype) => Table.TryGetValue(dtype, out var entry) ? entry.Torch : null;

    /// <summary>The safetensors name of a TorchSharp scalar type; null for types the format cannot hold (quantized, complex128).</summary>
    public static string? FromScalarType(ScalarType type) => type switch
    {
        ScalarType.Bool => "BOOL",
        ScalarType.Byte => "U8",
        ScalarType.Int8 => "I8",
        ScalarType.Int16 => "I16",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int32 => "I32",
        ScalarType.Float32 => "F32",
        ScalarType.ComplexFloat32 => "C64",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        _ => null,
    };
}
