namespace LowRank.Testing;

/// <summary>Paths tests read: the repository root (found by walking up to LowRank.Build.sln) and ../shared next to it.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Shared => Path.GetFullPath(Path.Combine(Root, "..", "shared"));

    public static string Stories260K => Path.Combine(Shared, "models", "stories260K");

    public static string Fixtures => Path.Combine(Root, "tests", "fixtures");

    public static string NpmData => Path.Combine(Root, ".data", "npm");

    public static string NpmModules => Path.Combine(NpmData, "node_modules");

    /// <summary>A self-trained model committed under models/ (llama-moby, gpt2-moby, opt-moby).</summary>
    public static string Model(string name) => Path.Combine(Root, "models", name);

    /// <summary>The tool's built-in default model (0.8 M parameters), committed in the repository.</summary>
    public static string LlamaMoby => Model("llama-moby");

    /// <summary>The repository README: real English text that is always there (calibration and held-out text in tests).</summary>
    public static string Readme => Path.Combine(Root, "README.md");

    /// <summary>The npm moby-dick corpus eng/setup.sh installs.</summary>
    public static string MobyDick => Path.Combine(NpmModules, "@stdlib", "datasets-moby-dick", "data", "data.txt");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LowRank.Build.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("LowRank.Build.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A fact that needs a folder of real data: skipped, with the reason shown, when the folder is absent.</summary>
public sealed class RequiresPathFactAttribute : FactAttribute
{
    /// <param name="relativeToRoot">A path relative to the repository root, e.g. "../shared/models/stories260K".</param>
    /// <param name="hint">How to get it (shown in the skip reason).</param>
    public RequiresPathFactAttribute(string relativeToRoot, string hint = "this test needs that real data")
    {
        var full = Path.GetFullPath(Path.Combine(RepoPaths.Root, relativeToRoot));
        if (!Directory.Exists(full) && !File.Exists(full)) Skip = $"{relativeToRoot} is not present ({full}): {hint}";
    }
}

/// <summary>A fact that needs ../shared; skipped with a visible reason where that folder is absent.</summary>
public sealed class RequiresSharedFactAttribute : FactAttribute
{
    public RequiresSharedFactAttribute(string relativePath = "")
    {
        var path = Path.Combine(RepoPaths.Shared, relativePath);
        if (!File.Exists(path) && !Directory.Exists(path)) Skip = $"{path} not present (../shared is not in this checkout)";
    }
}
