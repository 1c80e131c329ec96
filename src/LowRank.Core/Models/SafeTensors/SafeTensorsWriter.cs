using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// A tensor to be written by <see cref="SafeTensorsWriter.WriteModel"/>: its name, stored dtype and shape are known
/// up front (to lay out headers and shards); <see cref="Produce"/> is called once, when its bytes are written, so
/// only one tensor need be in memory at a time. A tensor of another dtype is converted to <see cref="Dtype"/>;
/// tensors created inside <see cref="Produce"/> are disposed after writing, tensors that existed before are left alone.
/// </summary>
public sealed record TensorSpec(string Name, ScalarType Dtype, long[] Shape, Func<Tensor> Produce);

/// <summary>
/// Writes safetensors files that the reference implementation (and <c>transformers</c>) reads: header with dtype,
/// shape and data offsets, padded with spaces to a multiple of 8 bytes, tensors stored back to back in the given
/// order. Every file is written to a temporary name in its folder and renamed into place, so a reader never sees a
/// half-written file.
/// </summary>
public static class SafeTensorsWriter
{
    private const long DefaultSliceBytes = 1L << 28;

    /// <summary>Writes <paramref name="tensors"/> (in memory, any device; the caller keeps ownership) to one file.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Write(path, tensors, metadata, DefaultSliceBytes);
    }

    /// <summary><see cref="Write(string, IEnumerable{KeyValuePair{string, Tensor}}, IReadOnlyDictionary{string, string}?)"/>
    /// copying large tensors in slices of <paramref name="sliceBytes"/> (tests use small slices).</summary>
    internal static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata, long sliceBytes)
    {
        var list = tensors.ToList();
        var specs = list.Select(t => new TensorSpec(t.Key, t.Value.dtype, t.Value.shape, () => t.Value)).ToList();
        WriteFile(Path.GetFullPath(path), specs, metadata, sliceBytes, sha256: null);
    }

    /// <summary>
    /// Writes a model's weights into <paramref name="folder"/>: <c>model.safetensors</c> when they total at most
    /// <paramref name="maxShardBytes"/>, else <c>model-0000i-of-0000n.safetensors</c> shards (tensors in the given
    /// order, a new shard when the next tensor would overflow the current one) plus <c>model.safetensors.index.json</c>,
    /// written last. Weight files of an earlier write that the new layout does not use are deleted, so the folder
    /// never holds two competing sets. <c>"format": "pt"</c> is added to the metadata unless given (transformers
    /// requires it). Returns the files written, full paths, index last.
    /// </summary>
    /// <param name="sha256">When given, receives each weight file's SHA-256 (full path → lower-case hex), computed from the
    /// bytes as they are written, so the caller need not read the files back to hash them.</param>
    /// <param name="parallelShards">Shards written at once (each its own file, flushed to disk): the disk's queue stays full
    /// while one thread produces tensors and another waits for its fsync.</param>
    public static IReadOnlyList<string> WriteModel(string folder, IReadOnlyList<TensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata = null, long maxShardBytes = 4L << 30,
        System.Collections.Concurrent.ConcurrentDictionary<string, string>? sha256 = null, int parallelShards = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(parallelShards);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        folder = Path.GetFullPath(folder);
        Directory.CreateDirectory(folder);
        var withFormat = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        withFormat.TryAdd("format", "pt");
        CheckNames(tensors, folder);

        var shards = new List<List<TensorSpec>>();
        var current = new List<TensorSpec>();
        long currentBytes = 0;
        foreach (var spec in tensors)
        {
            var bytes = ByteLength(spec);
            if (current.Count > 0 && currentBytes + bytes > maxShardBytes)
            {
                shards.Add(current);
                current = [];
                currentBytes = 0;
            }
            current.Add(spec);
            currentBytes += bytes;
        }
        if (current.Count > 0 || shards.Count == 0) shards.Add(current);

        var written = new List<string>();
        if (shards.Count == 1)
        {
            var single = Path.Combine(folder, TensorStore.SingleFileName);
            WriteFile(single, shards[0], withFormat, DefaultSliceBytes, sha256);
            written.Add(single);
        }
        else
        {
            var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
            var names = Enumerable.Range(0, shards.Count)
                .Select(i => string.Create(CultureInfo.InvariantCulture, $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors")).ToArray();
            Parallel.For(0, shards.Count, new ParallelOptions { MaxDegreeOfParallelism = parallelShards },
                i => WriteFile(Path.Combine(folder, names[i]), shards[i], withFormat, DefaultSliceBytes, sha256));
            for (var i = 0; i < shards.Count; i++)
            {
                written.Add(Path.Combine(folder, names[i]));
                foreach (var spec in shards[i]) weightMap[spec.Name] = names[i];
            }
            var index = Path.Combine(folder, TensorStore.IndexFileName);
            WriteAtomically(index, stream =>
            {
                using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
                json.WriteStartObject();
                json.WriteStartObject("metadata");
                json.WriteNumber("total_size", tensors.Sum(ByteLength));
                json.WriteEndObject();
                json.WriteStartObject("weight_map");
                foreach (var (tensor, shard) in weightMap) json.WriteString(tensor, shard);
                json.WriteEndObject();
                json.WriteEndObject();
            });
            written.Add(index);
        }
        DeleteStaleWeights(folder, written);
        return written;
    }

    private static void DeleteStaleWeights(string folder, List<string> written)
    {
        var keep = new HashSet<string>(written, StringComparer.Ordinal);
        var stale = Directory.GetFiles(folder, "model-*-of-*.safetensors")
            .Append(Path.Combine(folder, TensorStore.SingleFileName))
            .Append(Path.Combine(folder, TensorStore.IndexFileName))
            .Where(f => !keep.Contains(f) && File.Exists(f));
        foreach (var file in stale) File.Delete(file);
    }

    private static long ByteLength(TensorSpec spec)
    {
        var dtype = DtypeName(spec);
        SafeTensorsDtypes.TryGetElementSize(dtype, out var size);
        foreach (var dim in spec.Shape)
            if (dim < 0) throw new LrkException(ErrorCodes.BadSafetensors, $"tensor '{spec.Name}': shape [{string.Join(", ", spec.Shape)}] has a negative dimension");
        return checked(spec.Shape.Aggregate(1L, (product, dim) => product * dim) * size);
    }

    private static string DtypeName(TensorSpec spec) => SafeTensorsDtypes.FromScalarType(spec.Dtype)
        ?? throw new LrkException(ErrorCodes.BadSafetensors, $"tensor '{spec.Name}': dtype {spec.Dtype} cannot be stored in safetensors");

    private static void CheckNames(IReadOnlyList<TensorSpec> tensors, string where)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var spec in tensors)
        {
            if (spec.Name.Length == 0 || spec.Name == "__metadata__")
                throw new LrkException(ErrorCodes.BadSafetensors, $"{where}: '{spec.Name}' cannot name a tensor");
            if (!seen.Add(spec.Name))
                throw new LrkException(ErrorCodes.BadSafetensors, $"{where}: tensor '{spec.Name}' is given twice");
        }
    }

    /// <summary>
    /// Writes a file with the header of <paramref name="tensors"/> and its full length but no data: the data section is a
    /// hole (reads as zeros, takes no disk space) for the caller to fill in place later. Used by the scale benchmark to
    /// stage a checkpoint larger than the disk one block at a time.
    /// </summary>
    internal static void WritePlaceholder(string path, IReadOnlyList<TensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        CheckNames(tensors, path);
        var withFormat = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        withFormat.TryAdd("format", "pt");
        var header = BuildHeader(tensors, withFormat);
        var dataBytes = tensors.Sum(ByteLength);
        WriteAtomically(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            stream.SetLength(8 + header.Length + dataBytes);
        });
    }

    /// <summary>One shard file of a sharded model (<c>"format": "pt"</c> metadata, flushed to disk, renamed into place); its
    /// SHA-256 into <paramref name="sha256"/> when given. <see cref="WriteIndex"/> names the shards afterwards.</summary>
    internal static void WriteShard(string path, IReadOnlyList<TensorSpec> tensors, System.Collections.Concurrent.ConcurrentDictionary<string, string>? sha256) =>
        WriteFile(Path.GetFullPath(path), tensors, new Dictionary<string, string> { ["format"] = "pt" }, DefaultSliceBytes, sha256);

    /// <summary>Writes <c>model.safetensors.index.json</c> for the given tensor → shard file map.</summary>
    internal static void WriteIndex(string folder, IReadOnlyDictionary<string, string> weightMap, long totalBytes)
    {
        WriteAtomically(Path.Combine(folder, TensorStore.IndexFileName), stream =>
        {
            using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", totalBytes);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (tensor, shard) in weightMap.OrderBy(p => p.Key, StringComparer.Ordinal)) json.WriteString(tensor, shard);
            json.WriteEndObject();
            json.WriteEndObject();
        });
    }

    internal static long ByteLengthOf(TensorSpec spec) => ByteLength(spec);

    private static void WriteFile(string path, IReadOnlyList<TensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata, long sliceBytes,
        System.Collections.Concurrent.ConcurrentDictionary<string, string>? sha256)
    {
        CheckNames(tensors, path);
        var header = BuildHeader(tensors, metadata);
        using var hash = sha256 is null ? null : System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        WriteAtomically(path, file =>
        {
            // Not disposed here: WriteAtomically flushes the file to disk after this returns.
            var stream = hash is null ? file : new HashingWriteStream(file, hash);
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var spec in tensors) WriteTensor(stream, spec, sliceBytes);
        });
        if (hash is not null) sha256![path] = Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Passes writes through to a stream and into a hash (leaves the inner stream open).</summary>
    private sealed class HashingWriteStream(Stream inner, System.Security.Cryptography.IncrementalHash hash) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.AppendData(buffer);
            inner.Write(buffer);
        }
    }

    /// <summary>The JSON header, padded with spaces so the data section starts at a multiple of 8 bytes.</summary>
    private static byte[] BuildHeader(IReadOnlyList<TensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var spec in tensors)
            {
                var bytes = ByteLength(spec);
                json.WriteStartObject(spec.Name);
                json.WriteString("dtype", DtypeName(spec));
                json.WriteStartArray("shape");
                foreach (var dim in spec.Shape) json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        var padding = (int)((8 - buffer.Length % 8) % 8);
        for (var i = 0; i < padding; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static void WriteTensor(Stream stream, TensorSpec spec, long sliceBytes)
    {
        using var scope = NewDisposeScope();
        var produced = spec.Produce();
        if (!produced.shape.SequenceEqual(spec.Shape))
            throw new InvalidOperationException($"tensor '{spec.Name}': produced shape [{string.Join(", ", produced.shape)}], declared [{string.Join(", ", spec.Shape)}]");
        var tensor = produced;
        if (tensor.dtype != spec.Dtype) tensor = tensor.to(spec.Dtype);
        if (tensor.device_type != DeviceType.CPU) tensor = tensor.cpu();
        if (!tensor.is_contiguous()) tensor = tensor.contiguous();
        var total = tensor.NumberOfElements * tensor.ElementSize;
        if (total == 0) return;
        if (total <= sliceBytes)
        {
            stream.Write(tensor.bytes);
            return;
        }
        var flat = tensor.view(-1);
        var sliceElements = sliceBytes / tensor.ElementSize;
        for (long start = 0; start < tensor.NumberOfElements; start += sliceElements)
        {
            using var slice = flat.narrow(0, start, Math.Min(sliceElements, tensor.NumberOfElements - start));
            stream.Write(slice.bytes);
        }
    }

    /// <summary>Writes through a temporary file in the same folder, flushed to disk, then renamed over <paramref name="path"/>.</summary>
    internal static void WriteAtomically(string path, Action<Stream> write)
    {
        var temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
