using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;

namespace LowRank.Models;

/// <summary>
/// Reads and validates the header of a safetensors file: an 8-byte little-endian length N, then N bytes of JSON
/// mapping tensor names to <c>{dtype, shape, data_offsets}</c> (offsets relative to the data section that follows),
/// plus an optional <c>__metadata__</c> string map. Validation is as strict as the reference (Rust) implementation:
/// every tensor's byte span must match its shape and dtype, and the spans must tile the data section exactly,
/// without overlaps, holes, or bytes past its end.
/// </summary>
public sealed class SafeTensorsHeader
{
    /// <summary>The reference implementation's bound on the JSON header (100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private SafeTensorsHeader(string path, long headerBytes, long fileLength, List<TensorEntry> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        HeaderBytes = headerBytes;
        FileLength = fileLength;
        Tensors = tensors;
        Metadata = metadata;
    }

    public string Path { get; }

    /// <summary>N, the length of the JSON header (padding included).</summary>
    public long HeaderBytes { get; }

    public long FileLength { get; }

    /// <summary>First byte of the data section: 8 + N.</summary>
    public long DataStart => 8 + HeaderBytes;

    /// <summary>The tensors in header order.</summary>
    public IReadOnlyList<TensorEntry> Tensors { get; }

    /// <summary>The <c>__metadata__</c> map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Reads and validates the header of the file at <paramref name="path"/>.</summary>
    public static SafeTensorsHeader Read(string path)
    {
        // Opening a FIFO blocks until a writer comes; a device never ends.
        IO.RegularFile.Require(path, ErrorCodes.BadSafetensors, "model weights");
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
            return Read(stream, path);
        }
        catch (FileNotFoundException)
        {
            throw new LrkException(ErrorCodes.ModelNotFound, $"{path}: no such safetensors file");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new LrkException(ErrorCodes.BadSafetensors, $"{path}: cannot be read ({e.Message})");
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            throw new LrkException(ErrorCodes.BadSafetensors, $"{path}: cannot be read ({e.Message})");
        }
    }

    /// <summary>Reads and validates a header from the start of <paramref name="stream"/>; <paramref name="path"/> names it in errors.</summary>
    public static SafeTensorsHeader Read(Stream stream, string path)
    {
        var fileLength = stream.Length;
        if (fileLength < 8)
            throw Bad(path, $"file is {fileLength} bytes, too short to hold the 8-byte header length (truncated, or not a safetensors file)");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.Position = 0;
        stream.ReadExactly(lengthBytes);
        var declared = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (declared > MaxHeaderBytes)
            throw Bad(path, $"header length {declared} exceeds the {MaxHeaderBytes}-byte limit (corrupt, or not a safetensors file)");
        var headerBytes = (long)declared;
        if (headerBytes > fileLength - 8)
            throw Bad(path, $"header length {headerBytes} runs past the end of the file ({fileLength} bytes): the file is truncated or corrupt");
        if (headerBytes < 2)
            throw Bad(path, $"header length {headerBytes} is too small to hold a JSON object");

        var json = new byte[headerBytes];
        stream.ReadExactly(json);
        // JsonDocument checks the structure but decodes strings only when asked, so validate the encoding first.
        if (!System.Text.Unicode.Utf8.IsValid(json))
            throw Bad(path, "header is not valid JSON (it is not UTF-8 text)");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw Bad(path, $"header is not valid JSON ({e.Message})");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Bad(path, $"header must be a JSON object, found {Describe(root.ValueKind)}");
            var dataLength = fileLength - 8 - headerBytes;
            var tensors = new List<TensorEntry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                // "\ud800" is valid JSON but no text: such a name cannot be decoded, printed or written again.
                var name = Text(path, () => property.Name, "a tensor name");
                if (!seen.Add(name))
                    throw Bad(path, property.Name == "__metadata__" ? "'__metadata__' appears twice in the header" : $"tensor '{property.Name}' is declared twice in the header");
                if (property.Name == "__metadata__")
                    ReadMetadata(path, property.Value, metadata);
                else
                    tensors.Add(ReadTensor(path, property.Name, property.Value, 8 + headerBytes));
            }
            CheckLayout(path, tensors, 8 + headerBytes, dataLength);
            return new SafeTensorsHeader(path, headerBytes, fileLength, tensors, metadata);
        }
    }

    /// <summary>A JSON string of the header; one holding an escaped lone surrogate ("\ud800", valid JSON but not text) is
    /// <see cref="ErrorCodes.BadSafetensors"/>.</summary>
    private static string Text(string path, Func<string> read, string what)
    {
        string text;
        try
        {
            text = read();
        }
        catch (InvalidOperationException)
        {
            throw Bad(path, $"{what} holds a lone UTF-16 surrogate escape (such as \\ud800): not text");
        }
        return IO.StrictUtf8.IsWellFormed(text) ? text : throw Bad(path, $"{what} ('{IO.StrictUtf8.Printable(text)}') is not well-formed text");
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Bad(path, $"'__metadata__' must be an object of strings, found {Describe(value.ValueKind)}");
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw Bad(path, $"'__metadata__' value of '{entry.Name}' must be a string, found {Describe(entry.Value.ValueKind)}");
            var key = Text(path, () => entry.Name, "a '__metadata__' key");
            Text(path, () => entry.Value.GetString()!, $"the '__metadata__' value of '{key}'");
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw Bad(path, $"'__metadata__' key '{entry.Name}' appears twice");
        }
    }

    private static TensorEntry ReadTensor(string path, string name, JsonElement value, long dataStart)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Bad(path, $"tensor '{name}': expected an object with dtype, shape and data_offsets, found {Describe(value.ValueKind)}");
        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (var field in value.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype": dtypeElement = Once(path, name, field, dtypeElement); break;
                case "shape": shapeElement = Once(path, name, field, shapeElement); break;
                case "data_offsets": offsetsElement = Once(path, name, field, offsetsElement); break;
                default: break; // the reference reader ignores unknown fields too
            }
        }

        if (dtypeElement is not { ValueKind: JsonValueKind.String } dtypeValue)
            throw Bad(path, $"tensor '{name}': 'dtype' must be a string" + (dtypeElement is null ? " but is missing" : $", found {Describe(dtypeElement.Value.ValueKind)}"));
        var dtype = dtypeValue.GetString()!;
        if (!SafeTensorsDtypes.TryGetElementSize(dtype, out var elementSize))
            throw Bad(path, $"tensor '{name}': unknown dtype '{dtype}' (known: {string.Join(", ", SafeTensorsDtypes.Known)})");

        if (shapeElement is not { ValueKind: JsonValueKind.Array } shapeValue)
            throw Bad(path, $"tensor '{name}': 'shape' must be an array of integers" + (shapeElement is null ? " but is missing" : $", found {Describe(shapeElement.Value.ValueKind)}"));
        var shape = new long[shapeValue.GetArrayLength()];
        var index = 0;
        foreach (var dim in shapeValue.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out var size))
                throw Bad(path, $"tensor '{name}': shape entry {index} must be an integer, found {dim.GetRawText()}");
            if (size < 0)
                throw Bad(path, $"tensor '{name}': shape entry {index} is negative ({size})");
            shape[index++] = size;
        }

        if (offsetsElement is not { ValueKind: JsonValueKind.Array } offsetsValue || offsetsValue.GetArrayLength() != 2)
            throw Bad(path, $"tensor '{name}': 'data_offsets' must be an array [begin, end]" + (offsetsElement is null ? " but is missing" : $", found {offsetsElement.Value.GetRawText()}"));
        var begin = ReadOffset(path, name, offsetsValue[0]);
        var end = ReadOffset(path, name, offsetsValue[1]);
        if (end < begin)
            throw Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] end before they begin");

        long expected;
        try
        {
            expected = checked(shape.Aggregate(1L, (product, dim) => product * dim) * elementSize);
        }
        catch (OverflowException)
        {
            throw Bad(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] is too large");
        }
        if (expected != end - begin)
            throw Bad(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] of {dtype} needs {expected} bytes but data_offsets [{begin}, {end}] span {end - begin}");
        return new TensorEntry(name, dtype, shape, path, end - begin) { Offset = dataStart + begin };
    }

    private static JsonElement Once(string path, string name, JsonProperty field, JsonElement? existing) =>
        existing is null ? field.Value : throw Bad(path, $"tensor '{name}': field '{field.Name}' appears twice");

    private static long ReadOffset(string path, string name, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out var offset))
            throw Bad(path, $"tensor '{name}': data_offsets must be integers, found {element.GetRawText()}");
        if (offset < 0)
            throw Bad(path, $"tensor '{name}': data_offsets entry {offset} is negative");
        return offset;
    }

    private static void CheckLayout(string path, List<TensorEntry> tensors, long dataStart, long dataLength)
    {
        foreach (var tensor in tensors)
        {
            var begin = tensor.Offset - dataStart;
            if (begin + tensor.ByteLength > dataLength)
                throw Bad(path, $"tensor '{tensor.Name}': data_offsets [{begin}, {begin + tensor.ByteLength}] run past the end of the data section ({dataLength} bytes): the file is truncated or corrupt");
        }
        var sorted = tensors.OrderBy(t => t.Offset).ThenBy(t => t.ByteLength).ToList();
        var covered = 0L;
        TensorEntry? previous = null;
        foreach (var tensor in sorted)
        {
            var begin = tensor.Offset - dataStart;
            if (begin < covered)
                throw Bad(path, $"tensors '{previous!.Name}' and '{tensor.Name}' overlap (bytes {begin}..{covered} of the data section)");
            if (begin > covered)
                throw Bad(path, $"bytes {covered}..{begin} of the data section belong to no tensor (a hole before '{tensor.Name}')");
            covered = begin + tensor.ByteLength;
            previous = tensor;
        }
        if (covered != dataLength)
            throw Bad(path, $"the data section has {dataLength} bytes but its tensors cover only {covered}" +
                (previous is null ? "" : $" (last: '{previous.Name}')") + ": trailing bytes belong to no tensor");
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString().ToLower(CultureInfo.InvariantCulture),
    };

    private static LrkException Bad(string path, string message) => new(ErrorCodes.BadSafetensors, $"{path}: {message}");
}
