using LowRank.Artifacts;
using LowRank.Models;
using LowRank.Quantization;

namespace LowRank.Onnx.Graphs;

/// <summary>
/// Linears an artifact stores as integers (README, "Quantized tensors"), each stored matrix W [rows, cols] applied as
/// <c>x·Wᵀ</c> without ever holding W in floating point in the file:
/// <list type="bullet">
/// <item><c>int4-gG</c>: ONNX Runtime's <c>com.microsoft.MatMulNBits</c> (bits 4, block_size G, K = cols, N = rows). Its
/// B, scales and zero_points are the artifact's <c>.qweight</c> [rows, groups, G/2] (two codes per byte, low nibble
/// first), <c>.scales</c> (flattened, in the graph dtype) and <c>.qzeros</c> (flattened; absent for the symmetric grid,
/// whose zero point 8 is MatMulNBits' default) byte for byte.</item>
/// <item><c>int8</c>: <c>DequantizeLinear</c> of the int8 codes, stored transposed [cols, rows], with the fp32 per-row
/// scales on axis 1, then <c>MatMul</c>.</item>
/// <item><c>int3-gG</c> (MatMulNBits' CPU kernel takes 2, 4 or 8 bits): the codes unpacked to one uint8 each, stored
/// [groups, G, rows], dequantized in the graph — <c>(Cast(c) − z)·s</c> with z and s [groups, 1, rows] — reshaped to
/// [groups·G, rows], cut to [cols, rows], then <c>MatMul</c>.</item>
/// </list>
/// A factorised linear is two such products (B̂ first, then Â); a dense one (the rtn/gptq baselines) one.
/// </summary>
public abstract partial class DecoderGraph
{
    private IReadOnlyDictionary<string, QuantizedLinear>? quantizedLinears;

    /// <summary>The quantized linears recorded in the model's config (none for a dense model or a float artifact).</summary>
    private IReadOnlyDictionary<string, QuantizedLinear> QuantizedLinears =>
        quantizedLinears ??= ArtifactQuantization.Of(Config.Raw, "config.json");

    private string QuantizedLinear(string x, string name, QuantizedLinear quantized, long outFeatures, long inFeatures)
    {
        if (quantized.OutFeatures != outFeatures || quantized.InFeatures != inFeatures)
            throw new LrkException(ErrorCodes.BadArtifact,
                $"config.json: lowrank.quantization.linears.{name} is [{quantized.OutFeatures}, {quantized.InFeatures}] but the config implies [{outFeatures}, {inFeatures}]");
        var format = quantized.Format;
        var prefixA = name + ArtifactFormat.FactorAPrefix;
        var prefixB = name + ArtifactFormat.FactorBPrefix;
        if (Weights.Contains(name + QuantizedMatrix.CodesSuffix))
        {
            linears.Add(new ExportedLinear(name, outFeatures, inFeatures, null, format.ToString()));
            return QuantizedMatMul(x, name, format, outFeatures, inFeatures);
        }
        if (Weights.Contains(prefixA + QuantizedMatrix.CodesSuffix) && Weights.Contains(prefixB + QuantizedMatrix.CodesSuffix))
        {
            var rank = Weights.Shape(prefixB + QuantizedMatrix.CodesSuffix)[0];
            linears.Add(new ExportedLinear(name, outFeatures, inFeatures, rank, format.ToString()));
            return QuantizedMatMul(QuantizedMatMul(x, prefixB, format, rank, inFeatures), prefixA, format, outFeatures, rank);
        }
        throw new LrkException(ErrorCodes.MissingTensor,
            $"config.json lists '{name}' as quantized ({format}) but the checkpoint has neither '{name}{QuantizedMatrix.CodesSuffix}' nor '{prefixA}{QuantizedMatrix.CodesSuffix}' and '{prefixB}{QuantizedMatrix.CodesSuffix}'");
    }

    /// <summary><c>x·Wᵀ</c> for the matrix W [rows, cols] stored under <paramref name="prefix"/>.</summary>
    private string QuantizedMatMul(string x, string prefix, QuantFormat format, long rows, long cols)
    {
        var codesName = prefix + QuantizedMatrix.CodesSuffix;
        var scalesName = prefix + QuantizedMatrix.ScalesSuffix;
        var zerosName = prefix + QuantizedMatrix.ZerosSuffix;
        foreach (var (name, _, shape) in QuantizedMatrix.Layout(prefix, format, rows, cols)) CheckShape(name, shape);
        var groups = format.Groups(cols);
        if (format.PerChannel)
        {
            var codes = Graph.Initializer(codesName + ".T", OnnxDtype.Int8, [cols, rows], () => TransposeBytes(Raw(codesName, "I8"), rows, cols));
            var scales = Graph.Weight(scalesName, OnnxDtype.Float, [rows], () => Weights.Read(scalesName));
            var weight = Graph.Node("DequantizeLinear", [codes, scales], attributes: [OnnxGraph.Attribute("axis", 1L)]);
            if (Dtype != OnnxDtype.Float) weight = Cast(weight, Dtype);
            return Graph.Op("MatMul", x, weight);
        }
        if (format.Bits == 4)
        {
            var codes = Graph.Initializer(codesName, OnnxDtype.UInt8, [rows, groups, format.BlobBytes], () => Raw(codesName, "U8"));
            var scales = Graph.Weight(scalesName, Dtype, [rows * groups], () => Weights.Read(scalesName));
            List<string> inputs = [x, codes, scales];
            if (format.ZeroPoints)
                inputs.Add(Graph.Initializer(zerosName, OnnxDtype.UInt8, [rows * format.ZeroPointBytes(groups)], () => Raw(zerosName, "U8")));
            return Graph.Node("MatMulNBits", inputs, attributes:
            [
                OnnxGraph.Attribute("K", cols), OnnxGraph.Attribute("N", rows), OnnxGraph.Attribute("bits", 4L),
                OnnxGraph.Attribute("block_size", (long)format.GroupSize),
            ], domain: OnnxGraph.MicrosoftDomain);
        }
        // Other widths: unpacked codes, dequantized group by group in the graph.
        long g = format.GroupSize;
        var unpacked = Graph.Initializer(codesName + ".unpacked", OnnxDtype.UInt8, [groups, g, rows],
            () => TransposeBytes(Unpack(Raw(codesName, "U8"), format.Bits, rows * groups * g), rows, groups * g));
        var scale = Graph.Weight(scalesName + ".T", OnnxDtype.Float, [groups, 1, rows],
            () => OnnxDtypes.Transpose(Weights.Read(scalesName), rows, groups));
        var zero = Graph.Weight(zerosName + ".T", OnnxDtype.Float, [groups, 1, rows], () => ZeroPoints(zerosName, format, rows, groups));
        var values = Graph.Op("Mul", Graph.Op("Sub", Cast(unpacked, OnnxDtype.Float), zero), scale);
        var full = Graph.Op("Reshape", values, Graph.Int64s(groups * g, rows));
        var matrix = Graph.Op("Slice", full, Graph.Int64s(0), Graph.Int64s(cols), Graph.Int64s(0));
        if (Dtype != OnnxDtype.Float) matrix = Cast(matrix, Dtype);
        return Graph.Op("MatMul", x, matrix);
    }

    private byte[] Raw(string name, string dtype)
    {
        var (bytes, stored) = Weights.ReadRaw(name);
        if (stored != dtype) throw new LrkException(ErrorCodes.BadArtifact, $"tensor '{name}' is {stored}; the quantized layout stores {dtype}");
        return bytes;
    }

    /// <summary>The zero-point codes of a [rows, groups] grid as fp32 [groups, rows]: stored per row (packed), or 2^(b−1).</summary>
    private float[] ZeroPoints(string name, QuantFormat format, long rows, long groups)
    {
        var zeros = new float[groups * rows];
        if (!format.ZeroPoints)
        {
            Array.Fill(zeros, 1 << (format.Bits - 1));
            return zeros;
        }
        var packed = Raw(name, "U8");
        var perRow = format.ZeroPointBytes(groups);
        for (long r = 0; r < rows; r++)
        {
            var row = Unpack(packed.AsSpan((int)(r * perRow), (int)perRow), format.Bits, groups);
            for (long j = 0; j < groups; j++) zeros[j * rows + r] = row[j];
        }
        return zeros;
    }

    /// <summary>The first <paramref name="count"/> codes of a little-endian bit stream of <paramref name="bits"/>-bit codes
    /// (<see cref="BitPacking"/>'s layout), one byte each.</summary>
    internal static byte[] Unpack(ReadOnlySpan<byte> packed, int bits, long count)
    {
        var codes = new byte[count];
        var mask = (1 << bits) - 1;
        for (long i = 0; i < count; i++)
        {
            var bit = i * bits;
            var word = packed[(int)(bit >> 3)] | ((bit >> 3) + 1 < packed.Length ? packed[(int)(bit >> 3) + 1] << 8 : 0);
            codes[i] = (byte)((word >> (int)(bit & 7)) & mask);
        }
        return codes;
    }

    /// <summary>The transpose of a row-major [rows, cols] matrix of bytes.</summary>
    private static byte[] TransposeBytes(byte[] matrix, long rows, long cols)
    {
        var result = new byte[matrix.LongLength];
        for (long r = 0; r < rows; r++)
        {
            for (long c = 0; c < cols; c++) result[c * rows + r] = matrix[r * cols + c];
        }
        return result;
    }
}
