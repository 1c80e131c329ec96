using System.Runtime.InteropServices;

namespace LowRank.Onnx;

/// <summary>ONNX element types the exporter writes; the values are onnx.proto's <c>TensorProto.DataType</c>.</summary>
public enum OnnxDtype
{
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    Int32 = 6,
    Int64 = 7,
    Bool = 9,
    Float16 = 10,
    BFloat16 = 16,
}

public static class OnnxDtypes
{
    public static int ElementSize(this OnnxDtype dtype) => dtype switch
    {
        OnnxDtype.Float or OnnxDtype.Int32 => 4,
        OnnxDtype.Int64 => 8,
        OnnxDtype.Bool or OnnxDtype.UInt8 or OnnxDtype.Int8 => 1,
        OnnxDtype.Float16 or OnnxDtype.BFloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>The short name the command line uses.</summary>
    public static string ShortName(this OnnxDtype dtype) => dtype switch
    {
        OnnxDtype.Float => "fp32",
        OnnxDtype.Float16 => "fp16",
        OnnxDtype.BFloat16 => "bf16",
        _ => dtype.ToString().ToLowerInvariant(),
    };

    /// <summary>Values as little-endian bytes of <paramref name="dtype"/> (fp16/bf16 round to nearest even).</summary>
    public static byte[] Encode(ReadOnlySpan<float> values, OnnxDtype dtype)
    {
        switch (dtype)
        {
            case OnnxDtype.Float:
                return MemoryMarshal.AsBytes(values).ToArray();
            case OnnxDtype.Float16:
            {
                var bytes = new byte[values.Length * 2];
                var halves = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
                for (var i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
                return bytes;
            }
            case OnnxDtype.BFloat16:
            {
                var bytes = new byte[values.Length * 2];
                var words = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                for (var i = 0; i < values.Length; i++) words[i] = ToBFloat16(values[i]);
                return bytes;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a floating-point ONNX type");
        }
    }

    /// <summary>Safetensors bytes of dtype <paramref name="safetensorsDtype"/> (F32, F16, BF16, F64) as fp32 values.</summary>
    public static float[] DecodeSafetensors(ReadOnlySpan<byte> bytes, string safetensorsDtype)
    {
        switch (safetensorsDtype)
        {
            case "F32":
                return MemoryMarshal.Cast<byte, float>(bytes).ToArray();
            case "F16":
            {
                var halves = MemoryMarshal.Cast<byte, Half>(bytes);
                var values = new float[halves.Length];
                for (var i = 0; i < values.Length; i++) values[i] = (float)halves[i];
                return values;
            }
            case "BF16":
            {
                var words = MemoryMarshal.Cast<byte, ushort>(bytes);
                var values = new float[words.Length];
                for (var i = 0; i < values.Length; i++) values[i] = BitConverter.Int32BitsToSingle(words[i] << 16);
                return values;
            }
            case "F64":
            {
                var doubles = MemoryMarshal.Cast<byte, double>(bytes);
                var values = new float[doubles.Length];
                for (var i = 0; i < values.Length; i++) values[i] = (float)doubles[i];
                return values;
            }
            default:
                throw new LrkException(ErrorCodes.BadSafetensors, $"weights of dtype {safetensorsDtype} cannot be exported to ONNX (F32, F16, BF16, F64 can)");
        }
    }

    /// <summary>The transpose of a row-major [rows, cols] matrix.</summary>
    public static float[] Transpose(float[] matrix, long rows, long cols)
    {
        if (matrix.LongLength != rows * cols) throw new ArgumentException($"{matrix.LongLength} values are not [{rows}, {cols}]", nameof(matrix));
        var result = new float[matrix.LongLength];
        const int Tile = 32;
        for (long r0 = 0; r0 < rows; r0 += Tile)
        {
            for (long c0 = 0; c0 < cols; c0 += Tile)
            {
                long rEnd = Math.Min(rows, r0 + Tile), cEnd = Math.Min(cols, c0 + Tile);
                for (var r = r0; r < rEnd; r++)
                {
                    for (var c = c0; c < cEnd; c++) result[c * rows + r] = matrix[r * cols + c];
                }
            }
        }
        return result;
    }

    private static ushort ToBFloat16(float value)
    {
        var bits = (uint)BitConverter.SingleToInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        var rounding = 0x7FFFu + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
