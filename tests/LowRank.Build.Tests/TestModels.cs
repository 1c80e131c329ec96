namespace LowRank.Build.Tests;

/// <summary>A test that compresses the small source model; skipped, with the reason, when the checkout lacks it.</summary>
public sealed class RequiresCompressFactAttribute : FactAttribute
{
    public RequiresCompressFactAttribute()
    {
        if (TestModels.SourceModel is null) Skip = TestModels.MissingReason;
    }
}

/// <summary>The small real model the compression tests use: models/llama-moby (the repo's built-in default, 0.8 M parameters).</summary>
public static class TestModels
{
    public static string? SourceModel
    {
        get
        {
            var builtIn = RepoPaths.LlamaMoby;
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
