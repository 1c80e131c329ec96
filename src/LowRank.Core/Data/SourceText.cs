using System.Security.Cryptography;
using System.Text;

namespace LowRank.Data;

/// <summary>
/// The exact text a calibration or evaluation run used, with a SHA-256 of its UTF-8 bytes so an artifact or a report
/// can say precisely what it saw. <see cref="Text"/> is what the tokenizer receives: after the format's conversion
/// (WikiText joining, Brown tag stripping, ...) and after the byte range.
/// </summary>
public sealed record SourceText
{
    public required string Text { get; init; }

    /// <summary>Where the text came from, as given (a path, <c>npm:sotu</c>), with the byte range when there is one.</summary>
    public required string Location { get; init; }

    /// <summary>The reader used: <c>plain</c>, <c>folder</c>, <c>jsonl</c>, <c>wikitext</c>, <c>npm</c>.</summary>
    public required string Format { get; init; }

    /// <summary>One line for humans: reader, conversion, range and size.</summary>
    public required string Description { get; init; }

    /// <summary>Lower-case hex SHA-256 of the UTF-8 bytes of <see cref="Text"/>.</summary>
    public required string Sha256 { get; init; }

    /// <summary>UTF-8 byte length of <see cref="Text"/>.</summary>
    public required long Bytes { get; init; }

    /// <summary>The byte range applied, <c>[start, end)</c> on the reader's output, or null for the whole text.</summary>
    public ByteRange? Range { get; init; }

    /// <summary>UTF-8 byte length of the reader's output before the range was applied.</summary>
    public required long TotalBytes { get; init; }

    public static string Sha256Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static string Sha256Hex(string text) => Sha256Hex(Encoding.UTF8.GetBytes(text));
}

/// <summary>A half-open byte range <c>[Start, End)</c>; a null <see cref="End"/> means "to the end".</summary>
public readonly record struct ByteRange(long Start, long? End)
{
    public override string ToString() => $"[{Start}:{End?.ToString() ?? ""}]";
}
