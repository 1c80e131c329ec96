namespace LowRank.Testing;

/// <summary>tests/fixtures/parity/&lt;family&gt;/: a small randomly initialised model saved with save_pretrained and
/// transformers' fp32 CPU logits for fixed ids (reference.json; tools/device/make_parity_fixtures.py).</summary>
public static class ParityFixtures
{
    public static string Root => Path.Combine(RepoPaths.Fixtures, "parity");

    public static string Folder(string name) => Path.Combine(Root, name);

    /// <summary>The fixture's reference.json (input ids and transformers' logits).</summary>
    public static ParityReference Reference(string name) => ParityReference.Read(Folder(name));

    /// <summary>The fixture names (folders with a reference.json), in ordinal order.</summary>
    public static IReadOnlyList<string> Names() =>
        !Directory.Exists(Root) ? [] :
        [.. Directory.EnumerateDirectories(Root).Where(f => File.Exists(Path.Combine(f, "reference.json")))
            .Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal)];

    public static TheoryData<string> All()
    {
        var data = new TheoryData<string>();
        foreach (var name in Names()) data.Add(name);
        return data;
    }
}
