using System.Text;
using LowRank.IO;

namespace LowRank.Common.Tests.IO;

/// <summary><see cref="StrictUtf8"/>: bytes that are not UTF-8 are an error with the offset, never U+FFFD.</summary>
public sealed class StrictUtf8Tests : IDisposable
{
    private readonly TempFolder temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void Reads_utf8_and_drops_a_byte_order_mark()
    {
        File.WriteAllBytes(temp.File("bom.json"), [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("{\"é\": 1}")]);
        Assert.Equal("{\"é\": 1}", StrictUtf8.ReadAllText(temp.File("bom.json"), ErrorCodes.BadConfig));
    }

    [Fact]
    public void A_byte_that_is_not_utf8_is_an_error_with_its_offset()
    {
        File.WriteAllBytes(temp.File("latin1.json"), [.. "{\"act\": \"sil"u8, 0xFF, .. "u\"}"u8]);
        Assert.Contains('\uFFFD', File.ReadAllText(temp.File("latin1.json"))); // what the default reader does: replaces it silently
        var error = Assert.Throws<LrkException>(() => StrictUtf8.ReadAllText(temp.File("latin1.json"), ErrorCodes.BadConfig));
        Assert.Equal(ErrorCodes.BadConfig, error.Code);
        Assert.Contains("0xFF at offset 12", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tells_well_formed_utf16()
    {
        // (Built here: a lone surrogate does not survive xunit's test-case serialization.)
        foreach (var (text, expected) in new[] { ("plain", true), ("pair \ud83d\ude00", true), ("lone \ud800", false), ("\udc00 low first", false) })
        {
            Assert.Equal(expected, StrictUtf8.IsWellFormed(text));
            Assert.True(StrictUtf8.IsWellFormed(StrictUtf8.Printable(text)));
        }
        Assert.Equal("lone \\ud800", StrictUtf8.Printable("lone \ud800"));
    }
}
