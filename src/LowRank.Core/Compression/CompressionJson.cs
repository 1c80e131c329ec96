using System.Text.Json;
using System.Text.Json.Serialization;

namespace LowRank.Compression;

/// <summary>How compression records (options, reports, calibration protocols) are written as JSON: camelCase, indented,
/// non-finite numbers allowed (a report may hold NaN objectives), non-ASCII kept readable.</summary>
public static class CompressionJson
{
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
