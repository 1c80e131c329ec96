namespace LowRank.Build.Tests;

public static class RepoPaths
{
    /// <summary>The repository root: the folder above this test that holds LowRank.Build.sln.</summary>
    public static string Root { get; } = FindRoot();

    public static string Shared => Path.GetFullPath(Path.Combine(Root, "..", "shared"));

    /// <summary>True once the compress command exists in the tool (it is built on another branch).</summary>
    public static bool HasCompressCommand => File.Exists(Path.Combine(Root, "src", "LowRank.Tool", "Commands", "CompressCommand.cs"));

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "LowRank.Build.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("LowRank.Build.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A test that needs `dotnet lowrank compress` and a small source model; skipped, with the reason, until both exist.</summary>
public sealed class RequiresCompressFactAttribute : FactAttribute
{
    public RequiresCompressFactAttribute()
    {
        if (!RepoPaths.HasCompressCommand) Skip = "the compress command is not in this tool build yet (src/LowRank.Tool/Commands/CompressCommand.cs)";
        else if (TestModels.SourceModel is null) Skip = TestModels.MissingReason;
    }
}

/// <summary>The small real model the compression tests use: models/llama-moby (the repo's built-in default, 0.8 M parameters).</summary>
public static class TestModels
{
    public static string? SourceModel
    {
        get
        {
            var builtIn = Path.Combine(RepoPaths.Root, "models", "llama-moby");
            return File.Exists(Path.Combine(builtIn, "config.json")) ? builtIn : null;
        }
    }

    public const string MissingReason = "no small source model: models/llama-moby (the built-in default model) is not in this checkout";

    /// <summary>Calibration text: the shared TinyStories prefix, else the npm moby-dick corpus installed by eng/setup.sh.</summary>
    public static string? Calibration =>
        new[]
        {
            Path.Combine(RepoPaths.Shared, "data", "tinystories_valid_prefix.txt"),
            Path.Combine(RepoPaths.Root, ".data", "npm", "node_modules", "@stdlib", "datasets-moby-dick", "data", "data.txt"),
        }.FirstOrDefault(File.Exists);
}
