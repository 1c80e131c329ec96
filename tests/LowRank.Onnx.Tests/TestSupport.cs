namespace LowRank.Onnx.Tests;

/// <summary>Paths tests read: the repository root (found by walking up to LowRank.Build.sln).</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string ParityFixtures => Path.Combine(Root, "tests", "fixtures", "parity");

    public static string Models => Path.Combine(Root, "models");

    public static string NpmModules => Path.Combine(Root, ".data", "npm", "node_modules");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LowRank.Build.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("LowRank.Build.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A fresh folder under the system temp directory, deleted (with everything in it) on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lowrank-onnx-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A fact that needs the npm corpora eng/setup.sh installs; skipped with the reason where they are absent.</summary>
public sealed class RequiresNpmCorporaFactAttribute : FactAttribute
{
    public RequiresNpmCorporaFactAttribute()
    {
        if (!System.IO.File.Exists(System.IO.Path.Combine(RepoPaths.NpmModules, "@stdlib", "datasets-moby-dick", "data", "data.txt")))
            Skip = $"the npm corpora are not installed under {RepoPaths.NpmModules}: run 'bash eng/setup.sh'";
    }
}
