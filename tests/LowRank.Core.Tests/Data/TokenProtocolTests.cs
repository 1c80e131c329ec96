using LowRank.Data;
using LowRank.Tests.TestSupport;

namespace LowRank.Tests.Data;

public sealed class TokenProtocolTests
{
    private static SourceText Text(string text) => new()
    {
        Text = text,
        Location = "test",
        Format = "plain",
        Description = "test",
        Sha256 = SourceText.Sha256Hex(text),
        Bytes = System.Text.Encoding.UTF8.GetByteCount(text),
        TotalBytes = System.Text.Encoding.UTF8.GetByteCount(text),
    };

    private static int B(char c) => c + 3; // ByteTokenizer id of an ASCII character

    [Fact]
    public void Stream_joins_paragraphs_with_the_newline_token_and_one_dummy_prefix()
    {
        var tokens = TokenProtocol.Stream.Encode(new ByteTokenizer(), Text("ab\n\ncd\n\n\nef\n\n"));
        // paragraphs "ab", "cd", "ef" (the run of three newlines is one break; the trailing break leaves an empty one, dropped)
        Assert.Equal([1, B(' '), B('a'), B('b'), 13, B('c'), B('d'), 13, B('e'), B('f')], tokens.Tokens);
        Assert.Equal("stream", tokens.Protocol.Name);
        Assert.Equal([13], tokens.Protocol.JoinTokens!);
        Assert.Equal(3, tokens.Protocol.Paragraphs);
        Assert.True(tokens.Protocol.Bos);
        Assert.Equal(1, tokens.Protocol.BosId);
        Assert.Contains("[13]", tokens.Protocol.Description);
    }

    [Fact]
    public void Single_newlines_stay_inside_a_paragraph()
    {
        var tokens = TokenProtocol.Stream.Encode(new ByteTokenizer(), Text("a\nb"));
        Assert.Equal([1, B(' '), B('a'), 13, B('b')], tokens.Tokens);
        Assert.Equal(1, tokens.Protocol.Paragraphs);
    }

    [Fact]
    public void Plain_is_bos_plus_the_whole_text()
    {
        var tokens = TokenProtocol.Plain.Encode(new ByteTokenizer(), Text("a\n\nb"));
        Assert.Equal([1, B(' '), B('a'), 13, 13, B('b')], tokens.Tokens);
        Assert.Null(tokens.Protocol.JoinTokens);
    }

    [Fact]
    public void Bos_can_be_turned_off_and_the_record_says_so()
    {
        var tokens = TokenProtocol.Parse("stream", addBos: false).Encode(new ByteTokenizer(), Text("a\n\nb"));
        Assert.Equal([B(' '), B('a'), 13, B('b')], tokens.Tokens);
        Assert.False(tokens.Protocol.Bos);
        Assert.Null(tokens.Protocol.BosId);
    }

    [Fact]
    public void Empty_text_is_data_too_short_and_unknown_protocol_a_bad_argument()
    {
        Assert.Equal(ErrorCodes.DataTooShort, Assert.Throws<LrkException>(() => TokenProtocol.Stream.Encode(new ByteTokenizer(), Text("\n\n\n"))).Code);
        Assert.Equal(ErrorCodes.BadArgument, Assert.Throws<LrkException>(() => TokenProtocol.Parse("chunks")).Code);
    }
}
