using System.Text;

namespace LowRank.Data;

/// <summary>Splits a text into a calibration part and a held-out part at a byte offset, as the built-in models were
/// trained (first 90% of Moby-Dick for training, the last 10% held out).</summary>
public static class TextSplit
{
    /// <summary>The byte offset nearest below <paramref name="fraction"/> of the text's UTF-8 length that starts a character
    /// (byte ranges must not cut a character), so <c>[0:cut]</c> and <c>[cut:]</c> partition the text.</summary>
    public static long Cut(string spec, double fraction, TextSourceOptions? options = null)
    {
        if (!(fraction > 0 && fraction < 1)) throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "must be in (0, 1)");
        var bytes = Encoding.UTF8.GetBytes(TextSources.Load(spec, options).Text);
        var cut = (long)Math.Floor(bytes.LongLength * fraction);
        while (cut > 0 && (bytes[cut] & 0xC0) == 0x80) cut--;
        return cut;
    }
}
