using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank.Cache;

/// <summary>
/// One byte sequence per value: object keys sorted ordinally at every depth, no whitespace, numbers in invariant
/// shortest round-trip form (0.5, ".5" and "0.50" all write as 0.5), strings escaped the same way everywhere.
/// Hashing this text gives cache keys that do not depend on who wrote the JSON or on the machine's culture.
/// </summary>
public static class CanonicalJson
{
    public static string Serialize(JsonNode? node)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false, SkipValidation = false }))
        {
            Write(writer, node);
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static string Sha256Hex(string canonicalText) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalText)));

    private static void Write(Utf8JsonWriter writer, JsonNode? node)
    {
        switch (node)
        {
            case null:
                writer.WriteNullValue();
                break;
            case JsonObject obj:
                writer.WriteStartObject();
                foreach (var (name, value) in obj.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(name);
                    Write(writer, value);
                }
                writer.WriteEndObject();
                break;
            case JsonArray array:
                writer.WriteStartArray();
                foreach (var item in array) Write(writer, item);
                writer.WriteEndArray();
                break;
            case JsonValue value:
                WriteValue(writer, value);
                break;
        }
    }

    private static void WriteValue(Utf8JsonWriter writer, JsonValue value)
    {
        switch (value.GetValueKind())
        {
            case JsonValueKind.String:
                writer.WriteStringValue(value.GetValue<string>());
                break;
            case JsonValueKind.True:
            case JsonValueKind.False:
                writer.WriteBooleanValue(value.GetValue<bool>());
                break;
            case JsonValueKind.Null:
                writer.WriteNullValue();
                break;
            case JsonValueKind.Number:
                WriteNumber(writer, value);
                break;
            default:
                throw new LrkException(ErrorCodes.Internal, $"canonical JSON cannot hold a {value.GetValueKind()} value");
        }
    }

    private static void WriteNumber(Utf8JsonWriter writer, JsonValue value)
    {
        // Integers stay integers; everything else goes through double so 0.5 and 0.50 agree.
        if (value.TryGetValue<long>(out var l)) { writer.WriteNumberValue(l); return; }
        if (value.TryGetValue<int>(out var i)) { writer.WriteNumberValue(i); return; }
        var d = value.TryGetValue<double>(out var dd) ? dd : double.Parse(value.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture);
        if (double.IsNaN(d) || double.IsInfinity(d)) throw new LrkException(ErrorCodes.Internal, "canonical JSON cannot hold NaN or infinity");
        if (d == Math.Floor(d) && Math.Abs(d) < 1e15) { writer.WriteNumberValue((long)d); return; }
        writer.WriteRawValue(d.ToString("R", CultureInfo.InvariantCulture), skipInputValidation: false);
    }
}
