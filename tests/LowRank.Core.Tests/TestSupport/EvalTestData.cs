namespace LowRank.Tests.TestSupport;

/// <summary>Data the evaluation tests read: committed fixtures, the shared text files, the npm corpora.</summary>
public static class EvalTestData
{
    public static string Fixtures => Path.Combine(RepoPaths.Root, "tests", "fixtures");

    public static string TaskFixture(string name) => Path.Combine(Fixtures, "tasks", name);

    /// <summary>The folder holding node_modules with the npm corpora (what <c>NpmRoot</c> expects).</summary>
    public static string NpmRoot => Path.GetDirectoryName(RepoPaths.NpmModules)!;

    public static string TinyStories => Path.Combine(RepoPaths.Shared, "data", "tinystories_valid_prefix.txt");

    public static string WikiText2 => Path.Combine(RepoPaths.Shared, "data", "wikitext2_tokens_valid.txt");
}

/// <summary>A fact that needs the npm corpora installed by eng/setup.sh; skipped with a visible reason otherwise.</summary>
public sealed class RequiresNpmCorporaFactAttribute : FactAttribute
{
    public RequiresNpmCorporaFactAttribute()
    {
        if (!Directory.Exists(RepoPaths.NpmModules)) Skip = $"{RepoPaths.NpmModules} not present: run 'bash eng/setup.sh' to install the npm corpora";
    }
}
