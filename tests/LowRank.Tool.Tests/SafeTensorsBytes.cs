using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace LowRank.Tool.Tests;

/// <summary>Byte-level edits of a real safetensors file, the way a corrupt or hostile checkpoint would look: values
/// overwritten in place, a tensor appended, a name's spelling in the header replaced (header re-padded, data untouched).</summary>
public static class SafeTensorsBytes
{
    /// <summary>Sets every element of a 16-bit float tensor to the value whose bits are <paramref name="bits"/> (0x7BFF = fp16 max, 0x7E00 = NaN).</summary>
    public static void FillF16(string path, string tensor, ushort bits)
    {
        var bytes = File.ReadAllBytes(path);
        var (dataStart, header) = Header(bytes);
        var entry = header.RootElement.GetProperty(tensor);
        Assert.Equal("F16", entry.GetProperty("dtype").GetString());
        var offsets = entry.GetProperty("data_offsets");
        for (var i = dataStart + offsets[0].GetInt64(); i < dataStart + offsets[1].GetInt64(); i += 2)
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan((int)i), bits);
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>Appends a zero-filled F16 tensor.</summary>
    public static void AppendF16(string path, string tensor, params long[] shape)
    {
        var bytes = File.ReadAllBytes(path);
        var (dataStart, header) = Header(bytes);
        var end = header.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__").Max(p => p.Value.GetProperty("data_offsets")[1].GetInt64());
        var size = shape.Aggregate(2L, (a, b) => a * b);
        var json = Encoding.UTF8.GetString(bytes, 8, (int)(dataStart - 8)).TrimEnd();
        json = json[..^1] + $",\"{tensor}\":{{\"dtype\":\"F16\",\"shape\":[{string.Join(',', shape)}],\"data_offsets\":[{end},{end + size}]}}}}";
        Write(path, json, bytes.AsSpan((int)dataStart, (int)end), new byte[size]);
    }

    /// <summary>Replaces the header's text <paramref name="from"/> by <paramref name="to"/> (raw JSON, escapes included).</summary>
    public static void ReplaceInHeader(string path, string from, string to)
    {
        var bytes = File.ReadAllBytes(path);
        var (dataStart, _) = Header(bytes);
        var json = Encoding.UTF8.GetString(bytes, 8, (int)(dataStart - 8));
        Assert.Contains(from, json, StringComparison.Ordinal);
        Write(path, json.Replace(from, to, StringComparison.Ordinal).TrimEnd(), bytes.AsSpan((int)dataStart), []);
    }

    private static (long DataStart, JsonDocument Header) Header(byte[] bytes)
    {
        var length = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return (8 + length, JsonDocument.Parse(bytes.AsMemory(8, (int)length)));
    }

    private static void Write(string path, string json, ReadOnlySpan<byte> data, ReadOnlySpan<byte> extra)
    {
        var header = Encoding.UTF8.GetBytes(json);
        var padded = (header.Length + 7) / 8 * 8;
        using var stream = File.Create(path);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
        stream.Write(prefix);
        stream.Write(header);
        for (var i = header.Length; i < padded; i++) stream.WriteByte((byte)' ');
        stream.Write(data);
        stream.Write(extra);
    }
}
