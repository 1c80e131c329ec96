namespace LowRank.Models;

/// <summary>
/// One tensor of a safetensors file as its header declares it: dtype name (<c>"F32"</c>, <c>"F16"</c>, <c>"BF16"</c>, …),
/// shape, the file holding it and its size in bytes. <see cref="Offset"/> is its first byte in the file (header included).
/// </summary>
public sealed record TensorEntry(string Name, string Dtype, long[] Shape, string File, long ByteLength)
{
    /// <summary>Absolute byte offset of the tensor's data in <see cref="File"/>.</summary>
    public long Offset { get; init; }

    /// <summary>Number of elements (1 for a scalar, 0 when a dimension is 0).</summary>
    public long ElementCount => Shape.Aggregate(1L, (product, dim) => product * dim);

    /// <summary>Shape as "[4096, 11008]".</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
