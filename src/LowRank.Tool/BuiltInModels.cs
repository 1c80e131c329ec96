namespace LowRank.Tool;

/// <summary>
/// The project's own small trained model (<c>models/llama-moby</c>, see models/README.md), shipped inside the tool
/// (copied next to dotnet-lowrank.dll, so an installed tool has it too) so the demo needs no download.
/// </summary>
public static class BuiltInModels
{
    public const string DefaultName = "llama-moby";

    /// <summary>The folder of the default model: beside the tool, else <c>models/llama-moby</c> of the checkout above the current directory.</summary>
    public static string DefaultFolder()
    {
        var besideTool = Path.Combine(AppContext.BaseDirectory, "models", DefaultName);
        if (File.Exists(Path.Combine(besideTool, "config.json"))) return besideTool;
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "models", DefaultName);
            if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
        }
        throw new LrkException(ErrorCodes.ModelNotFound,
            $"the built-in model {DefaultName} is neither beside the tool ({besideTool}) nor in a checkout above {Directory.GetCurrentDirectory()}; pass --model FOLDER");
    }
}
