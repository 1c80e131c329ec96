namespace LowRank.Onnx;

/// <summary>Where an export reads its tensors: by checkpoint name, shape, and values as fp32.</summary>
public interface IExportWeights
{
    bool Contains(string name);

    long[] Shape(string name);

    /// <summary>The tensor's values, converted to fp32 (exact for fp16/bf16 sources), row-major.</summary>
    float[] Read(string name);

    /// <summary>The tensor's stored bytes (row-major, little-endian) and safetensors dtype (U8, I8, F16, …): quantized
    /// codes go into the graph as they are.</summary>
    (byte[] Bytes, string Dtype) ReadRaw(string name) =>
        throw new NotSupportedException($"{GetType().Name} cannot read '{name}' as raw bytes");
}

/// <summary>The tensors of a safetensors model folder (dense checkpoint or compressed artifact), read without libtorch.</summary>
public sealed class SafeTensorsExportWeights(Models.TensorStore store) : IExportWeights
{
    public bool Contains(string name) => store.Contains(name);

    public long[] Shape(string name) => store.Info(name).Shape;

    public float[] Read(string name)
    {
        var (bytes, dtype) = ReadRaw(name);
        return OnnxDtypes.DecodeSafetensors(bytes, dtype);
    }

    public (byte[] Bytes, string Dtype) ReadRaw(string name)
    {
        var entry = store.Info(name);
        if (entry.ByteLength > Array.MaxLength)
            throw new LrkException(ErrorCodes.BadArgument, $"tensor '{name}' is {entry.ByteLength:N0} bytes, more than the exporter reads in one piece");
        var bytes = new byte[entry.ByteLength];
        store.ReadBytes(name, bytes);
        return (bytes, entry.Dtype);
    }
}

/// <summary>Tensors held in memory (synthetic benchmark models, tests).</summary>
public sealed class MemoryExportWeights : IExportWeights
{
    private readonly Dictionary<string, (long[] Shape, Func<float[]> Values)> tensors = new(StringComparer.Ordinal);

    public void Add(string name, long[] shape, Func<float[]> values) => tensors[name] = (shape, values);

    public bool Contains(string name) => tensors.ContainsKey(name);

    public long[] Shape(string name) => Find(name).Shape;

    public float[] Read(string name) => Find(name).Values();

    private (long[] Shape, Func<float[]> Values) Find(string name) =>
        tensors.TryGetValue(name, out var found) ? found : throw new LrkException(ErrorCodes.MissingTensor, $"no tensor named '{name}'");
}
