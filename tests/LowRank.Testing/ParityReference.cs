using System.Text.Json;

namespace LowRank.Testing;

/// <summary>A parity fixture's reference.json: the input ids [batch, seq] and transformers' fp32 logits (flat, in <see cref="Shape"/>).</summary>
public sealed record ParityReference(long[][] InputIds, long[] Shape, float[] Logits)
{
    /// <summary>The ids flattened row by row, for a [batch, seq] tensor.</summary>
    public long[] FlatIds => [.. InputIds.SelectMany(r => r)];

    public long Batch => InputIds.Length;

    public long SequenceLength => InputIds[0].Length;

    public static ParityReference Read(string fixtureFolder)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixtureFolder, "reference.json")));
        var root = json.RootElement;
        return new ParityReference(
            [.. root.GetProperty("input_ids").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetInt64()).ToArray())],
            [.. root.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64())],
            [.. root.GetProperty("logits").EnumerateArray().Select(v => v.GetSingle())]);
    }
}
