using System.Text.Json;
using LowRank.IO;

namespace LowRank.Common.Tests.IO;

/// <summary><see cref="JsonTextCheck"/>: a lone surrogate escape anywhere in a document is a coded error naming where,
/// instead of the InvalidOperationException System.Text.Json throws when the string is read.</summary>
public sealed class JsonTextCheckTests
{
    [Theory]
    [InlineData("""{"model": {"vocab": {"\ud800": 1}}}""", "a key under 'model.vocab'")]
    [InlineData("""{"hidden_act": "silu\ud800"}""", "the value of 'hidden_act'")]
    [InlineData("""{"list": ["ok", "\udc00"]}""", "the value of 'list[1]'")]
    public void A_lone_surrogate_is_a_coded_error_naming_the_key(string json, string where)
    {
        using var document = JsonDocument.Parse(json);
        Assert.ThrowsAny<InvalidOperationException>(() => Read(document.RootElement)); // what would happen later
        var error = Assert.Throws<LrkException>(() => JsonTextCheck.Check(json, "config.json", ErrorCodes.BadConfig));
        Assert.Equal(ErrorCodes.BadConfig, error.Code);
        Assert.Contains(where, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Surrogate_pairs_and_ordinary_text_pass() =>
        JsonTextCheck.Check("""{"emoji": "\ud83d\ude00", "n": 1, "a": [true, null, "x"]}""", "config.json", ErrorCodes.BadConfig);

    private static void Read(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in element.EnumerateObject())
                {
                    _ = p.Name;
                    Read(p.Value);
                }
                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray()) Read(item);
                break;
            case JsonValueKind.String:
                _ = element.GetString();
                break;
            default:
                break;
        }
    }
}
