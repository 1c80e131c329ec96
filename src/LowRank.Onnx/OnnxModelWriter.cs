using System.Globalization;
using Google.Protobuf;
using LowRank.Onnx.Proto;

namespace LowRank.Onnx;

/// <summary>Where an exported graph keeps its weights.</summary>
public enum ExternalData
{
    /// <summary>In a file beside the graph when the weights pass <see cref="OnnxModelWriter.ExternalDataThreshold"/>.</summary>
    Auto,
    /// <summary>Always beside the graph (<c>model.onnx.data</c>).</summary>
    Always,
    /// <summary>Always inside model.onnx (fails past protobuf's 2 GiB message limit).</summary>
    Never,
}

/// <summary>What was written: the files (names relative to the folder) and the weights' bytes.</summary>
public sealed record OnnxWriteResult(IReadOnlyList<string> Files, long InitializerBytes, bool External);

/// <summary>
/// Writes an <see cref="OnnxGraph"/> as an ONNX model (IR version 8, default opset <see cref="OnnxGraph.Opset"/>).
/// Protobuf messages cannot exceed 2 GiB, so larger models keep their initializers in <c>&lt;model&gt;.data</c> beside the
/// graph (onnx.proto's external data: location, offset, length), each tensor's bytes produced, written and dropped one at a
/// time. Offsets of tensors of 64 KiB and more are aligned to 4096 bytes so runtimes can map them.
/// </summary>
public static class OnnxModelWriter
{
    public const long IrVersion = 8;

    /// <summary>Weights above this go to an external data file under <see cref="ExternalData.Auto"/> (protobuf's hard limit
    /// is 2 GiB for the whole message; this leaves room for the graph).</summary>
    public const long ExternalDataThreshold = 1L << 30;

    public static OnnxWriteResult Write(OnnxGraph graph, string folder, string fileName, ExternalData external,
        IReadOnlyDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default)
    {
        var total = graph.Initializers.Sum(i => i.ByteLength);
        var useExternal = external switch
        {
            ExternalData.Always => true,
            ExternalData.Never => false,
            _ => total > ExternalDataThreshold,
        };
        if (!useExternal && total > int.MaxValue - (64L << 20))
            throw new LrkException(ErrorCodes.BadArgument, $"the weights are {total:N0} bytes, more than one ONNX protobuf can hold: use external data");

        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "LowRank.Build",
            ProducerVersion = typeof(OnnxModelWriter).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = graph.Proto,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OnnxGraph.Opset });
        // ONNX Runtime's contrib operators (MatMulNBits for int4 weights) live in their own domain, version 1.
        if (graph.Proto.Node.Any(n => n.Domain == OnnxGraph.MicrosoftDomain))
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = OnnxGraph.MicrosoftDomain, Version = 1 });
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });

        var files = new List<string> { fileName };
        graph.Proto.Initializer.Clear();
        if (useExternal)
        {
            var dataName = fileName + ".data";
            files.Add(dataName);
            using var data = new FileStream(Path.Combine(folder, dataName), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
            foreach (var initializer in graph.Initializers)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (!IsExternal(initializer))
                {
                    graph.Proto.Initializer.Add(Inline(initializer));
                    continue;
                }
                var length = initializer.ByteLength;
                var alignment = length >= 65536 ? 4096 : 64;
                var offset = (data.Position + alignment - 1) / alignment * alignment;
                if (offset > data.Position) data.Write(new byte[offset - data.Position]);
                Produce(initializer, data);
                var tensor = Header(initializer);
                tensor.DataLocation = TensorProto.Types.DataLocation.External;
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataName });
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(CultureInfo.InvariantCulture) });
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString(CultureInfo.InvariantCulture) });
                graph.Proto.Initializer.Add(tensor);
            }
        }
        else
        {
            foreach (var initializer in graph.Initializers)
            {
                cancellationToken.ThrowIfCancellationRequested();
                graph.Proto.Initializer.Add(Inline(initializer));
            }
        }
        using (var stream = new FileStream(Path.Combine(folder, fileName), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
        {
            model.WriteTo(stream);
        }
        graph.Proto.Initializer.Clear();
        return new OnnxWriteResult(files, total, useExternal);
    }

    /// <summary>Weights go to the data file; shapes, axes and other small constants stay in the graph, where shape
    /// inference reads them (it cannot read external data).</summary>
    private static bool IsExternal(OnnxInitializer initializer) =>
        initializer.Dtype is OnnxDtype.Float or OnnxDtype.Float16 or OnnxDtype.BFloat16 && initializer.ByteLength >= 1024;

    private static TensorProto Inline(OnnxInitializer initializer)
    {
        var tensor = Header(initializer);
        using var buffer = new MemoryStream(checked((int)initializer.ByteLength));
        Produce(initializer, buffer);
        tensor.RawData = ByteString.CopyFrom(buffer.GetBuffer(), 0, (int)buffer.Length);
        return tensor;
    }

    private static TensorProto Header(OnnxInitializer initializer)
    {
        var tensor = new TensorProto { Name = initializer.Name, DataType = (int)initializer.Dtype };
        tensor.Dims.AddRange(initializer.Shape);
        return tensor;
    }

    /// <summary>Writes the initializer's bytes to <paramref name="stream"/>: raw, or its fp32 values encoded a million at a time.</summary>
    private static void Produce(OnnxInitializer initializer, Stream stream)
    {
        long written;
        if (initializer.Bytes is { } raw)
        {
            var bytes = raw();
            stream.Write(bytes);
            written = bytes.LongLength;
        }
        else
        {
            var values = initializer.Values!();
            const int Chunk = 1 << 20;
            for (long start = 0; start < values.LongLength; start += Chunk)
            {
                var count = (int)Math.Min(Chunk, values.LongLength - start);
                stream.Write(OnnxDtypes.Encode(values.AsSpan((int)start, count), initializer.Dtype));
            }
            written = values.LongLength * initializer.Dtype.ElementSize();
        }
        if (written != initializer.ByteLength)
            throw new InvalidOperationException($"initializer '{initializer.Name}' produced {written} bytes, its shape needs {initializer.ByteLength}");
    }
}
