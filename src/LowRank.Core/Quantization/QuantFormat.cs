using System.Globalization;
using LowRank.Compression;

namespace LowRank.Quantization;

/// <summary>
/// How one matrix [rows, cols] (a dense weight [out, in] or a factor: A [out, k], B [k, in]) is stored as integers.
/// Every format quantizes each output row separately, along its input dimension (the layout GPTQ, AWQ and ONNX
/// Runtime's MatMulNBits share):
/// <list type="bullet">
/// <item><c>int8</c>: per output channel, symmetric: <c>q = round(w / s)</c> in [−127, 127], <c>s = max|w_row| / 127</c>;
/// the error of every element is at most s/2.</item>
/// <item><c>int4</c>, <c>int3</c> (<c>-g32|-g64|-g128</c>, default g128): groups of <see cref="GroupSize"/> consecutive
/// input columns share a scale. Symmetric (default): unsigned codes <c>c = clamp(round(w / s) + 2^(b−1), 0, 2^b − 1)</c>
/// with <c>s = 2·max|w_group| / (2^b − 1)</c> and the implicit zero point 2^(b−1) (GPTQ's symmetric grid, MatMulNBits'
/// default zero point). With <c>-zp</c>, asymmetric: <c>s = (max − min) / (2^b − 1)</c> over the group with min ≤ 0 ≤ max,
/// and a stored zero point <c>z = round(−min / s)</c>. Dequantized: <c>(c − z)·s</c>.</item>
/// </list>
/// Scales are stored in fp16 (the scale used while quantizing is already the fp16 value, so what is stored is what was
/// optimised). The packed layout is in <see cref="QuantizedMatrix"/> and the README ("Quantized tensors").
/// </summary>
public readonly record struct QuantFormat
{
    public QuantFormat(int bits, int groupSize, bool zeroPoints)
    {
        Bits = bits;
        GroupSize = groupSize;
        ZeroPoints = zeroPoints;
        Validate();
    }

    /// <summary>Bits per stored weight: 8, 4 or 3.</summary>
    public int Bits { get; }

    /// <summary>Input columns per scale; 0 = one scale per output row (int8).</summary>
    public int GroupSize { get; }

    /// <summary>Asymmetric grid with a stored zero point per group (group-wise formats only).</summary>
    public bool ZeroPoints { get; }

    public bool PerChannel => GroupSize == 0;

    /// <summary>The largest code, 2^b − 1.</summary>
    public int MaxCode => (1 << Bits) - 1;

    /// <summary>Bytes of the packed codes of one group: <c>GroupSize · Bits / 8</c> (whole bytes for every supported group).</summary>
    public int BlobBytes => GroupSize * Bits / 8;

    public static readonly QuantFormat Int8 = new(8, 0, false);

    /// <summary>The group size when a spelling names none (GPTQ's and ONNX Runtime's usual block size).</summary>
    public const int DefaultGroupSize = 128;

    public static IReadOnlyList<int> GroupSizes => FactorDtypeNames.GroupSizes;

    /// <summary>The accepted spellings, for help and error messages.</summary>
    public const string Spellings = FactorDtypeNames.QuantizedSpellings;

    /// <summary>int8, int4-g128, int3-g64-zp: the canonical name (also what artifacts record per linear).</summary>
    public override string ToString() => PerChannel ? $"int{Bits}" : $"int{Bits}-g{GroupSize}{(ZeroPoints ? "-zp" : "")}";

    /// <summary>The format of <c>--bits B</c> with a group size and zero-point choice: 8 is always per channel.</summary>
    public static QuantFormat ForBits(int bits, int? groupSize = null, bool zeroPoints = false) =>
        bits == 8 ? Int8 : new QuantFormat(bits, groupSize ?? DefaultGroupSize, zeroPoints);

    /// <summary>Parses a spelling with the one grammar (<see cref="FactorDtypeNames.TryParseQuantized"/>).</summary>
    public static bool TryParse(string? text, out QuantFormat format)
    {
        format = default;
        if (!FactorDtypeNames.TryParseQuantized(text, out var bits, out var group, out var zeroPoints)) return false;
        format = ForBits(bits, group, zeroPoints);
        return true;
    }

    /// <summary>Parses a spelling (see <see cref="Spellings"/>) or fails with <see cref="ErrorCodes.BadArgument"/>.</summary>
    public static QuantFormat Parse(string text) => TryParse(text, out var format)
        ? format
        : throw new LrkException(ErrorCodes.BadArgument, $"unknown quantized format '{text}': use {Spellings} (int8 is per channel and symmetric)");

    /// <summary>Bytes this format stores for a [rows, cols] matrix: codes, fp16 scales and packed zero points.</summary>
    public long StorageBytes(long rows, long cols)
    {
        if (PerChannel) return rows * cols + rows * ScaleBytes;
        var groups = Groups(cols);
        return rows * groups * BlobBytes + rows * groups * ScaleBytes + (ZeroPoints ? rows * ZeroPointBytes(groups) : 0);
    }

    /// <summary>Scale groups of a row of <paramref name="cols"/> values (the last one padded).</summary>
    public long Groups(long cols) => PerChannel ? 1 : (cols + GroupSize - 1) / GroupSize;

    /// <summary>Bytes of one row's packed zero points: <c>ceil(groups · Bits / 8)</c> (MatMulNBits' packed zero points for 4 bits).</summary>
    public long ZeroPointBytes(long groups) => BitPacking.RowBytes(groups, Bits);

    public const int ScaleBytes = 2;

    private void Validate()
    {
        if (Bits == 8)
        {
            if (GroupSize != 0 || ZeroPoints) throw new ArgumentException("int8 is per output channel and symmetric");
        }
        else if (Bits is 3 or 4)
        {
            if (!GroupSizes.Contains(GroupSize)) throw new ArgumentException($"int{Bits} needs a group size of 32, 64 or 128 (got {GroupSize})");
        }
        else throw new ArgumentException($"{Bits}-bit storage is not supported (8, 4 or 3)");
    }
}
