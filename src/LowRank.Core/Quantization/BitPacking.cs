using static TorchSharp.torch;

namespace LowRank.Quantization;

/// <summary>
/// Packs b-bit codes into bytes and back, low bits first: the codes of a run are written as one little-endian bit
/// stream, code i occupying bits [i·b, i·b + b) of the run. For b = 4 that is two codes per byte with the first in the
/// low nibble (ONNX Runtime MatMulNBits' layout); for b = 3, eight codes in three bytes. Runs are the last dimension
/// and must fill whole bytes (runs·b a multiple of 8 — every group of 32, 64 or 128 does); <see cref="PackRows"/> pads
/// a row to whole bytes with zero bits instead (packed zero points).
/// </summary>
public static class BitPacking
{
    /// <summary>codes [..., n] (uint8, each below 2^bits; n·bits a multiple of 8) → uint8 [..., n·bits/8].</summary>
    public static Tensor Pack(Tensor codes, int bits)
    {
        CheckBits(bits);
        var n = codes.shape[^1];
        if (n * bits % 8 != 0) throw new ArgumentException($"{n} codes of {bits} bits do not fill whole bytes");
        using var scope = NewDisposeScope();
        var c = codes.to(ScalarType.Byte);
        if (bits == 8) return c.contiguous().MoveToOuterDisposeScope();
        long[] lead = codes.shape[..^1];
        if (bits == 4)
        {
            // Two codes per byte, the first in the low nibble.
            var pairs = c.reshape([.. lead, n / 2, 2]);
            var low = pairs.select(-1, 0);
            var high = pairs.select(-1, 1);
            return low.bitwise_or(high.bitwise_left_shift(4)).contiguous().MoveToOuterDisposeScope();
        }
        // General case: the bit stream, then every 8 bits to a byte.
        var shifts = arange(bits, dtype: ScalarType.Byte, device: codes.device);
        var stream = c.unsqueeze(-1).bitwise_right_shift(shifts).bitwise_and(1).reshape([.. lead, n * bits / 8, 8]);
        var weights = arange(8, dtype: ScalarType.Byte, device: codes.device);
        return stream.bitwise_left_shift(weights).sum([-1], type: ScalarType.Int64).to(ScalarType.Byte).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>uint8 [..., bytes] → codes uint8 [..., bytes·8/bits] (inverse of <see cref="Pack"/>).</summary>
    public static Tensor Unpack(Tensor packed, int bits)
    {
        CheckBits(bits);
        if (packed.dtype != ScalarType.Byte) throw new ArgumentException($"packed codes must be uint8 (got {packed.dtype})");
        using var scope = NewDisposeScope();
        if (bits == 8) return packed.alias().MoveToOuterDisposeScope();
        var bytes = packed.shape[^1];
        long[] lead = packed.shape[..^1];
        if (bits == 4)
        {
            var low = packed.bitwise_and(15);
            var high = packed.bitwise_right_shift(4);
            return stack([low, high], -1).reshape([.. lead, bytes * 2]).MoveToOuterDisposeScope();
        }
        var shifts = arange(8, dtype: ScalarType.Byte, device: packed.device);
        var stream = packed.unsqueeze(-1).bitwise_right_shift(shifts).bitwise_and(1).reshape([.. lead, bytes * 8 / bits, bits]);
        var weights = arange(bits, dtype: ScalarType.Byte, device: packed.device);
        return stream.bitwise_left_shift(weights).sum([-1], type: ScalarType.Int64).to(ScalarType.Byte).MoveToOuterDisposeScope();
    }

    /// <summary>codes [rows, n] → uint8 [rows, ceil(n·bits/8)]: each row's stream padded with zero bits to whole bytes.</summary>
    public static Tensor PackRows(Tensor codes, int bits)
    {
        using var scope = NewDisposeScope();
        var n = codes.shape[^1];
        var padded = PaddedCount(n, bits);
        var c = padded == n ? codes.to(ScalarType.Byte) : nn.functional.pad(codes.to(ScalarType.Byte), [0, padded - n]);
        return Pack(c, bits).narrow(-1, 0, RowBytes(n, bits)).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Inverse of <see cref="PackRows"/>: the first <paramref name="n"/> codes of each row.</summary>
    public static Tensor UnpackRows(Tensor packed, int bits, long n)
    {
        using var scope = NewDisposeScope();
        var full = PaddedCount(n, bits) * bits / 8;
        var bytes = packed.shape[^1];
        var whole = full > bytes ? nn.functional.pad(packed, [0, full - bytes]) : packed;
        return Unpack(whole, bits).narrow(-1, 0, n).MoveToOuterDisposeScope();
    }

    /// <summary>Bytes of a row of <paramref name="n"/> codes packed by <see cref="PackRows"/>: ceil(n·bits/8).</summary>
    public static long RowBytes(long n, int bits) => (n * bits + 7) / 8;

    /// <summary>The smallest count ≥ <paramref name="n"/> whose codes fill whole bytes.</summary>
    public static long PaddedCount(long n, int bits)
    {
        var step = 8 / GreatestCommonDivisor(8, bits);
        return (n + step - 1) / step * step;
    }

    private static int GreatestCommonDivisor(int a, int b) => b == 0 ? a : GreatestCommonDivisor(b, a % b);

    private static void CheckBits(int bits)
    {
        if (bits is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(bits), $"{bits} bits per code");
    }
}
