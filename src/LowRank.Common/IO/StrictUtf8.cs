using System.Text;

namespace LowRank.IO;

/// <summary>
/// Text files read as strict UTF-8: a byte sequence that is not UTF-8 is an error with a code and the byte's offset,
/// never silently replaced by U+FFFD (as File.ReadAllText does); and JSON-decoded strings holding a lone UTF-16
/// surrogate (<c>"\ud800"</c>, valid JSON but no text) are found before they reach code that encodes them.
/// </summary>
public static class StrictUtf8
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The file's text (a leading byte-order mark dropped); <paramref name="code"/> when it is not UTF-8.</summary>
    public static string ReadAllText(string path, string code)
    {
        var bytes = File.ReadAllBytes(path);
        return Decode(bytes, path, code);
    }

    /// <summary>Decodes UTF-8 bytes (a leading byte-order mark dropped); <paramref name="code"/> names <paramref name="source"/> when they are not UTF-8.</summary>
    public static string Decode(ReadOnlySpan<byte> bytes, string source, string code)
    {
        var start = bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? 3 : 0;
        try
        {
            return Strict.GetString(bytes[start..]);
        }
        catch (DecoderFallbackException e)
        {
            throw new LrkException(code, $"{source}: not UTF-8 text (invalid byte 0x{(e.BytesUnknown is { Length: > 0 } b ? b[0] : 0):X2} at offset {start + e.Index})");
        }
    }

    /// <summary>Whether <paramref name="text"/> is well-formed UTF-16 (every surrogate in a pair), i.e. encodable as UTF-8.</summary>
    public static bool IsWellFormed(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (!char.IsSurrogate(text[i])) continue;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }
            return false;
        }
        return true;
    }

    /// <summary>A printable form of a string that may hold lone surrogates (each shown as \uXXXX).</summary>
    public static string Printable(string text)
    {
        if (IsWellFormed(text)) return text;
        var builder = new StringBuilder(text.Length + 8);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                builder.Append(c).Append(text[++i]);
            }
            else if (char.IsSurrogate(c))
            {
                builder.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            }
            else
            {
                builder.Append(c);
            }
        }
        return builder.ToString();
    }
}
