using System.Reflection;
using System.Text.RegularExpressions;

namespace LowRank.Tests;

/// <summary>docs/error-codes.md holds exactly the codes of <see cref="ErrorCodes"/>, each once, under its constant's
/// name, with a meaning and a fix, in its band; its warnings list names only codes of the table.</summary>
public sealed partial class ErrorCodeTableTests
{
    private static readonly string Table = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "error-codes.md"));

    private static Dictionary<string, string> Declared() => typeof(ErrorCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral && f.FieldType == typeof(string))
        .ToDictionary(f => (string)f.GetRawConstantValue()!, f => f.Name);

    [Fact]
    public void Every_code_has_one_row_with_its_name_a_meaning_and_a_fix()
    {
        var rows = Row().Matches(Table).Select(m => (Code: m.Groups["code"].Value, Name: m.Groups["name"].Value,
            Meaning: m.Groups["meaning"].Value.Trim(), Fix: m.Groups["fix"].Value.Trim())).ToArray();
        var declared = Declared();
        Assert.Equal(declared.Count, declared.Values.Distinct().Count());
        Assert.Equal(rows.Length, rows.Select(r => r.Code).Distinct().Count());
        Assert.Equal(declared.Keys.Order(), rows.Select(r => r.Code).Order());
        foreach (var row in rows)
        {
            Assert.Equal(declared[row.Code], row.Name);
            Assert.True(row.Meaning.Length > 10, $"{row.Code} has no meaning");
            Assert.True(row.Fix.Length > 5, $"{row.Code} has no fix");
        }
        // Rows in code order, so a band reads as one block.
        Assert.Equal(rows.Select(r => r.Code).Order(StringComparer.Ordinal), rows.Select(r => r.Code));
    }

    [Fact]
    public void The_warnings_section_lists_codes_of_the_table_marked_as_warnings()
    {
        var section = Table[Table.IndexOf("## Warnings", StringComparison.Ordinal)..];
        var warnings = Code().Matches(section).Select(m => m.Value).ToArray();
        Assert.NotEmpty(warnings);
        foreach (var code in warnings)
        {
            Assert.Contains(code, Declared().Keys);
            Assert.Matches($@"\| `{code}` \| \w+ \| \*\*Warning\*\*", Table);
        }
    }

    [GeneratedRegex(@"^\| `(?<code>LRK\d{4})` \| (?<name>\w+) \| (?<meaning>[^|]+) \| (?<fix>[^|]+) \|$", RegexOptions.Multiline)]
    private static partial Regex Row();

    [GeneratedRegex(@"LRK\d{4}")]
    private static partial Regex Code();
}
