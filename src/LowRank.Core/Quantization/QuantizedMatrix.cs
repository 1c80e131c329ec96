using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Quantization;

/// <summary>
/// A matrix W [rows, cols] stored as integers (<see cref="QuantFormat"/>), in the layout the artifact writes:
/// <list type="bullet">
/// <item><c>int8</c>: <see cref="Codes"/> int8 [rows, cols] (q, no offset), <see cref="Scales"/> fp16 [rows];
/// <c>W = q · s[row]</c>.</item>
/// <item><c>int4</c>/<c>int3</c> with group size g: <see cref="Codes"/> uint8 [rows, groups, g·b/8] with groups =
/// ceil(cols / g), each group's g codes packed low bits first (<see cref="BitPacking"/>; the last group padded with the
/// zero point's code); <see cref="Scales"/> fp16 [rows, groups]; <see cref="Zeros"/> (with <c>-zp</c>) uint8
/// [rows, ceil(groups·b/8)], each row's zero-point codes packed the same way. <c>W[r, j] = (c − z)·s</c> for the group of
/// column j, z = 2^(b−1) when no zero points are stored. For b = 4 this is ONNX Runtime MatMulNBits' B, scales and
/// zero_points (scales flattened).</item>
/// </list>
/// Owns its tensors.
/// </summary>
public sealed class QuantizedMatrix : IDisposable
{
    private QuantizedMatrix(QuantFormat format, long rows, long columns, Tensor codes, Tensor scales, Tensor? zeros)
    {
        Format = format;
        Rows = rows;
        Columns = columns;
        Codes = codes;
        Scales = scales;
        Zeros = zeros;
    }

    public QuantFormat Format { get; }
    public long Rows { get; }
    public long Columns { get; }
    public Tensor Codes { get; private set; }
    public Tensor Scales { get; private set; }
    public Tensor? Zeros { get; private set; }

    public Device Device => Codes.device;

    /// <summary>Bytes stored: codes, scales and zero points (<see cref="QuantFormat.StorageBytes"/>).</summary>
    public long Bytes => Format.StorageBytes(Rows, Columns);

    /// <summary>Suffixes of the three tensors after the matrix's prefix (<c>&lt;linear&gt;</c> for a dense weight,
    /// <c>&lt;linear&gt;.lowrank_A</c> / <c>.lowrank_B</c> for a factor).</summary>
    public const string CodesSuffix = ".qweight";
    public const string ScalesSuffix = ".scales";
    public const string ZerosSuffix = ".qzeros";

    /// <summary>
    /// Builds the stored form from unpacked codes: <paramref name="codes"/> [rows, cols] integer-valued (signed q for int8,
    /// unsigned c in [0, 2^b − 1] otherwise), <paramref name="scales"/> [rows] or [rows, groups] (rounded to fp16 here: pass
    /// the values the codes were made with, already fp16-representable), <paramref name="zeros"/> [rows, groups] codes (only
    /// with zero points). Tensors are copied.
    /// </summary>
    public static QuantizedMatrix FromCodes(QuantFormat format, Tensor codes, Tensor scales, Tensor? zeros)
    {
        if (codes.dim() != 2) throw new ArgumentException($"codes must be [rows, cols] (got [{string.Join(",", codes.shape)}])");
        if (format.ZeroPoints != zeros is not null) throw new ArgumentException(format.ZeroPoints ? "zero points are missing" : "this format stores no zero points");
        var rows = codes.shape[0];
        var cols = codes.shape[1];
        using var scope = NewDisposeScope();
        if (format.PerChannel)
        {
            var q = codes.to(ScalarType.Int8).contiguous();
            var s = scales.reshape(rows).to(ScalarType.Float16).contiguous();
            return Owned(new QuantizedMatrix(format, rows, cols, q, s, null));
        }
        var groups = format.Groups(cols);
        var padded = groups * format.GroupSize;
        var fill = format.ZeroPoints ? zeros! : full([rows, 1], 1 << (format.Bits - 1), dtype: ScalarType.Int64, device: codes.device);
        var c = codes.to(ScalarType.Int64);
        if (padded > cols)
        {
            // The padding holds the zero point's code, so a reader that ignores the column count still decodes zeros.
            var lastZero = fill.select(1, fill.shape[1] - 1).to(ScalarType.Int64).unsqueeze(1).expand(rows, padded - cols);
            c = cat([c, lastZero], 1);
        }
        var packed = BitPacking.Pack(c.to(ScalarType.Byte).reshape(rows, groups, format.GroupSize), format.Bits);
        var stored = scales.reshape(rows, groups).to(ScalarType.Float16).contiguous();
        var z = format.ZeroPoints ? BitPacking.PackRows(zeros!.to(ScalarType.Byte), format.Bits) : null;
        return Owned(new QuantizedMatrix(format, rows, cols, packed, stored, z));
    }

    /// <summary>
    /// Takes stored tensors (as read from an artifact) after checking dtypes and shapes against the format and the
    /// matrix shape; <paramref name="name"/> prefixes the errors (<see cref="ErrorCodes.BadArtifact"/>). Takes ownership.
    /// </summary>
    public static QuantizedMatrix FromStored(string name, QuantFormat format, long rows, long columns, Tensor codes, Tensor scales, Tensor? zeros)
    {
        void Check(bool ok, string what)
        {
            if (!ok) throw new LrkException(ErrorCodes.BadArtifact, $"{name}: {what} does not fit {format} for a [{rows}, {columns}] matrix");
        }
        string Shape(Tensor t) => $"{t.dtype} [{string.Join(", ", t.shape)}]";
        if (format.PerChannel)
        {
            Check(codes.dtype == ScalarType.Int8 && codes.shape.SequenceEqual([rows, columns]), $"{CodesSuffix} {Shape(codes)}");
            Check(scales.is_floating_point() && scales.shape.SequenceEqual([rows]), $"{ScalesSuffix} {Shape(scales)}");
            Check(zeros is null, ZerosSuffix);
        }
        else
        {
            var groups = format.Groups(columns);
            Check(codes.dtype == ScalarType.Byte && codes.shape.SequenceEqual([rows, groups, format.BlobBytes]), $"{CodesSuffix} {Shape(codes)}");
            Check(scales.is_floating_point() && scales.shape.SequenceEqual([rows, groups]), $"{ScalesSuffix} {Shape(scales)}");
            if (format.ZeroPoints)
                Check(zeros is not null && zeros.dtype == ScalarType.Byte && zeros.shape.SequenceEqual([rows, format.ZeroPointBytes(groups)]),
                    zeros is null ? $"a missing {ZerosSuffix}" : $"{ZerosSuffix} {Shape(zeros)}");
            else Check(zeros is null, $"a {ZerosSuffix} tensor");
        }
        return new QuantizedMatrix(format, rows, columns, codes.DetachFromDisposeScope(), scales.DetachFromDisposeScope(), zeros?.DetachFromDisposeScope());
    }

    /// <summary>The unpacked integer codes [rows, cols] (int64): signed q for int8, unsigned c otherwise.</summary>
    public Tensor UnpackedCodes()
    {
        using var scope = NewDisposeScope();
        if (Format.PerChannel) return Codes.to(ScalarType.Int64).MoveToOuterDisposeScope();
        var codes = BitPacking.Unpack(Codes, Format.Bits).reshape(Rows, -1).narrow(1, 0, Columns);
        return codes.to(ScalarType.Int64).MoveToOuterDisposeScope();
    }

    /// <summary>The zero-point codes [rows, groups] (int64): stored, or 2^(b−1) for the symmetric formats (0 for int8).</summary>
    public Tensor ZeroCodes()
    {
        using var scope = NewDisposeScope();
        var groups = Format.Groups(Columns);
        if (Format.PerChannel) return zeros([Rows, 1], dtype: ScalarType.Int64, device: Device).MoveToOuterDisposeScope();
        if (Zeros is null) return full([Rows, groups], 1 << (Format.Bits - 1), dtype: ScalarType.Int64, device: Device).MoveToOuterDisposeScope();
        return BitPacking.UnpackRows(Zeros, Format.Bits, groups).to(ScalarType.Int64).MoveToOuterDisposeScope();
    }

    /// <summary>W [rows, cols] in <paramref name="dtype"/>: (c − z)·s, computed in fp32 (fp64 when asked for fp64).</summary>
    public Tensor Dequantize(ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var work = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        if (Format.PerChannel)
            return (Codes.to(work) * Scales.to(work).unsqueeze(1)).to(dtype).MoveToOuterDisposeScope();
        var groups = Format.Groups(Columns);
        var codes = BitPacking.Unpack(Codes, Format.Bits).to(work);                                   // [rows, groups, g]
        var values = (codes - ZeroCodes().to(work).unsqueeze(2)) * Scales.to(work).unsqueeze(2);
        return values.reshape(Rows, groups * Format.GroupSize).narrow(1, 0, Columns).to(dtype).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>The tensors to store under <paramref name="prefix"/>, in order: codes, scales, zero points (when present).</summary>
    public IEnumerable<(string Name, Tensor Tensor)> Named(string prefix)
    {
        yield return (prefix + CodesSuffix, Codes);
        yield return (prefix + ScalesSuffix, Scales);
        if (Zeros is not null) yield return (prefix + ZerosSuffix, Zeros);
    }

    /// <summary>Shapes and dtypes of <see cref="Named"/> for a [rows, cols] matrix, without the tensors.</summary>
    public static IEnumerable<(string Name, ScalarType Dtype, long[] Shape)> Layout(string prefix, QuantFormat format, long rows, long cols)
    {
        if (format.PerChannel)
        {
            yield return (prefix + CodesSuffix, ScalarType.Int8, [rows, cols]);
            yield return (prefix + ScalesSuffix, ScalarType.Float16, [rows]);
            yield break;
        }
        var groups = format.Groups(cols);
        yield return (prefix + CodesSuffix, ScalarType.Byte, [rows, groups, format.BlobBytes]);
        yield return (prefix + ScalesSuffix, ScalarType.Float16, [rows, groups]);
        if (format.ZeroPoints) yield return (prefix + ZerosSuffix, ScalarType.Byte, [rows, format.ZeroPointBytes(groups)]);
    }

    /// <summary>Moves the tensors to <paramref name="device"/> (block streaming).</summary>
    public void MoveTo(Device device)
    {
        if (Codes.device == device) return;
        Codes = Moved(Codes, device);
        Scales = Moved(Scales, device);
        if (Zeros is not null) Zeros = Moved(Zeros, device);
    }

    private static Tensor Moved(Tensor tensor, Device device)
    {
        var moved = tensor.to(device).DetachFromDisposeScope();
        tensor.Dispose();
        return moved;
    }

    private static QuantizedMatrix Owned(QuantizedMatrix matrix)
    {
        matrix.Codes.DetachFromDisposeScope();
        matrix.Scales.DetachFromDisposeScope();
        matrix.Zeros?.DetachFromDisposeScope();
        return matrix;
    }

    public void Dispose()
    {
        Codes.Dispose();
        Scales.Dispose();
        Zeros?.Dispose();
    }
}
