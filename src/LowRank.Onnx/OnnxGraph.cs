using System.Globalization;
using Google.Protobuf;
using LowRank.Onnx.Proto;

namespace LowRank.Onnx;

/// <summary>A graph input/output dimension: a fixed size or a symbolic name (<c>batch_size</c>).</summary>
public readonly record struct OnnxDim(long? Value, string? Name)
{
    public static implicit operator OnnxDim(long value) => new(value, null);

    public static implicit operator OnnxDim(string name) => new(null, name);
}

/// <summary>
/// Builds one ONNX graph: nodes named after where they are (<see cref="Scope"/>), constants shared by value, and
/// initializers whose bytes are produced only when the model is written (<see cref="OnnxModelWriter"/>), so a
/// multi-gigabyte model never sits in memory twice. Every method returns the name of the value it made.
/// </summary>
public sealed class OnnxGraph
{
    private readonly GraphProto graph = new();
    private readonly List<OnnxInitializer> initializers = [];
    private readonly Dictionary<string, string> constants = new(StringComparer.Ordinal);
    private readonly HashSet<string> names = new(StringComparer.Ordinal);
    private readonly Stack<string> scopes = new();

    public OnnxGraph(string name) => graph.Name = name;

    internal GraphProto Proto => graph;

    public IReadOnlyList<OnnxInitializer> Initializers => initializers;

    /// <summary>The opset of the default domain the graph's nodes are written against (LayerNormalization needs 17).</summary>
    public const int Opset = 17;

    /// <summary>The domain of ONNX Runtime's contrib operators (MatMulNBits).</summary>
    public const string MicrosoftDomain = "com.microsoft";

    /// <summary>Prefixes the names of the nodes made until the result is disposed (<c>/model/layers.0/attn</c>).</summary>
    public IDisposable Scope(string name)
    {
        scopes.Push(scopes.Count == 0 ? "/" + name : scopes.Peek() + "/" + name);
        return new PopScope(scopes);
    }

    public void Input(string name, OnnxDtype dtype, params OnnxDim[] shape) => graph.Input.Add(ValueInfo(name, dtype, shape));

    public void Output(string name, OnnxDtype dtype, params OnnxDim[] shape) => graph.Output.Add(ValueInfo(name, dtype, shape));

    /// <summary>An initializer whose bytes (<paramref name="dtype"/>, row-major) come from <paramref name="bytes"/> at write time.</summary>
    public string Initializer(string name, OnnxDtype dtype, long[] shape, Func<byte[]> bytes) => Add(new OnnxInitializer(name, dtype, shape, bytes, null));

    /// <summary>A floating-point initializer whose fp32 values come from <paramref name="values"/> at write time and are
    /// stored as <paramref name="dtype"/>.</summary>
    public string Weight(string name, OnnxDtype dtype, long[] shape, Func<float[]> values) => Add(new OnnxInitializer(name, dtype, shape, null, values));

    private string Add(OnnxInitializer initializer)
    {
        if (!names.Add(initializer.Name)) throw new InvalidOperationException($"the graph already has a value named '{initializer.Name}'");
        initializers.Add(initializer);
        return initializer.Name;
    }

    /// <summary>A 1-D int64 constant (shapes, axes, indices), shared by every node that asks for the same values.</summary>
    public string Int64s(params long[] values)
    {
        var key = "i64:" + string.Join(",", values);
        if (constants.TryGetValue(key, out var existing)) return existing;
        var bytes = new byte[values.Length * sizeof(long)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return constants[key] = Initializer($"const_i64_{constants.Count}", OnnxDtype.Int64, [values.Length], () => bytes);
    }

    /// <summary>A scalar int64 constant.</summary>
    public string Int64(long value)
    {
        var key = "i64s:" + value.ToString(CultureInfo.InvariantCulture);
        if (constants.TryGetValue(key, out var existing)) return existing;
        return constants[key] = Initializer($"const_i64s_{constants.Count}", OnnxDtype.Int64, [], () => BitConverter.GetBytes(value));
    }

    /// <summary>A scalar floating-point constant in <paramref name="dtype"/>.</summary>
    public string Scalar(double value, OnnxDtype dtype)
    {
        var key = $"{dtype}:{value.ToString("R", CultureInfo.InvariantCulture)}";
        if (constants.TryGetValue(key, out var existing)) return existing;
        return constants[key] = Weight($"const_{dtype.ToString().ToLowerInvariant()}_{constants.Count}", dtype, [], () => [(float)value]);
    }

    /// <summary>A 1-D float constant in <paramref name="dtype"/> (e.g. rotary inverse frequencies).</summary>
    public string Floats(string name, float[] values, OnnxDtype dtype) => Weight(name, dtype, [values.Length], () => values);

    /// <summary>Adds a node with one output and returns the output's name (<paramref name="output"/>, else a fresh one).</summary>
    public string Node(string op, IReadOnlyList<string> inputs, string? output = null, IReadOnlyList<AttributeProto>? attributes = null, string domain = "")
        => Node(op, inputs, 1, output is null ? null : [output], attributes, domain)[0];

    /// <summary>Adds a node with <paramref name="outputCount"/> outputs.</summary>
    public IReadOnlyList<string> Node(string op, IReadOnlyList<string> inputs, int outputCount, IReadOnlyList<string>? outputs = null,
        IReadOnlyList<AttributeProto>? attributes = null, string domain = "")
    {
        var nodeName = UniqueName((scopes.Count == 0 ? "" : scopes.Peek()) + "/" + op);
        var node = new NodeProto { Name = nodeName, OpType = op, Domain = domain };
        node.Input.AddRange(inputs);
        var made = outputs ?? Enumerable.Range(0, outputCount).Select(i => UniqueName($"{nodeName}_output_{i}")).ToArray();
        foreach (var name in outputs ?? []) names.Add(name);
        node.Output.AddRange(made);
        if (attributes is not null) node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
        return made;
    }

    public string Op(string op, params string[] inputs) => Node(op, inputs);

    private string UniqueName(string wanted)
    {
        if (names.Add(wanted)) return wanted;
        for (var i = 1; ; i++)
        {
            var candidate = $"{wanted}_{i}";
            if (names.Add(candidate)) return candidate;
        }
    }

    public static AttributeProto Attribute(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Attribute(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Attribute(string name, string value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Attribute(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    private static ValueInfoProto ValueInfo(string name, OnnxDtype dtype, OnnxDim[] shape)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)dtype, Shape = new TensorShapeProto() };
        foreach (var dim in shape)
        {
            tensor.Shape.Dim.Add(dim.Name is { } symbol
                ? new TensorShapeProto.Types.Dimension { DimParam = symbol }
                : new TensorShapeProto.Types.Dimension { DimValue = dim.Value ?? 0 });
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    private sealed class PopScope(Stack<string> scopes) : IDisposable
    {
        private bool done;

        public void Dispose()
        {
            if (done) return;
            done = true;
            scopes.Pop();
        }
    }
}

/// <summary>A weight or constant of the graph, made when the model is written: raw bytes of <see cref="Dtype"/>, or fp32
/// values encoded as <see cref="Dtype"/> (so a tensor larger than one byte array can hold still streams out).</summary>
public sealed record OnnxInitializer(string Name, OnnxDtype Dtype, long[] Shape, Func<byte[]>? Bytes, Func<float[]>? Values)
{
    public long ByteLength => Shape.Aggregate(1L, (p, d) => p * d) * Dtype.ElementSize();
}
