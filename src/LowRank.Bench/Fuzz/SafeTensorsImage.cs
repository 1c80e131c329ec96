using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace LowRank.Bench.Fuzz;

/// <summary>
/// A safetensors file held as its parsed header (a JSON object, edited freely) and its data bytes, for mutating:
/// <see cref="Write"/> puts the header back with its length prefix, whatever it says.
/// </summary>
public sealed class SafeTensorsImage
{
    public SafeTensorsImage(JsonObject header, byte[] data)
    {
        Header = header;
        Data = data;
    }

    public JsonObject Header { get; }
    public byte[] Data { get; set; }

    public static SafeTensorsImage Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var length = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, length))!.AsObject();
        return new SafeTensorsImage(header, bytes[(8 + length)..]);
    }

    public IEnumerable<string> TensorNames => Header.Select(p => p.Key).Where(k => k != "__metadata__");

    public JsonObject Tensor(string name) => Header[name]!.AsObject();

    public (long Begin, long End) Offsets(string name)
    {
        var offsets = Tensor(name)["data_offsets"]!.AsArray();
        return (offsets[0]!.GetValue<long>(), offsets[1]!.GetValue<long>());
    }

    public byte[] Bytes() => Encode(Header.ToJsonString(), Data);

    public static byte[] Encode(string headerJson, byte[] data) => Encode(Encoding.UTF8.GetBytes(headerJson), data);

    public static byte[] Encode(byte[] header, byte[] data, ulong? statedLength = null)
    {
        var result = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, statedLength ?? (ulong)header.Length);
        header.CopyTo(result, 8);
        data.CopyTo(result, 8 + header.Length);
        return result;
    }

    public void Write(string path) => File.WriteAllBytes(path, Bytes());
}
