using System.Globalization;

namespace LowRank.Common.Tests;

/// <summary><see cref="InvariantNumber"/> under cultures with a decimal comma and with a thousands comma.</summary>
public sealed class InvariantNumberTests
{
    [Theory]
    [InlineData("de-DE")]
    [InlineData("fr-FR")]
    [InlineData("en-US")]
    public void Reads_a_dot_and_refuses_a_comma_under_every_culture(string culture)
    {
        var before = CultureInfo.CurrentCulture;
        CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo(culture);
        try
        {
            Assert.True(InvariantNumber.TryParse("0.4", out var value));
            Assert.Equal(0.4, value);
            Assert.True(InvariantNumber.TryParse("-2.5e-3", out value));
            Assert.Equal(-0.0025, value);
            Assert.False(InvariantNumber.TryParse("0,4", out _));
            Assert.False(InvariantNumber.TryParse("1,000", out _));
            Assert.False(InvariantNumber.TryParse("NaN", out _));
            Assert.False(InvariantNumber.TryParse("Infinity", out _));
            Assert.False(InvariantNumber.TryParse(null, out _));
        }
        finally
        {
            CultureInfo.CurrentCulture = before;
        }
    }
}
