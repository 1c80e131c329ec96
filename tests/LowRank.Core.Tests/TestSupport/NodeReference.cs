using System.Text.Json;

namespace LowRank.Tests.TestSupport;

/// <summary>
/// Runs a reference tokenizer written in JavaScript (installed by eng/setup.sh under .data/npm) with node:
/// the script reads the text from a file and prints the ids as JSON.
/// </summary>
public static class NodeReference
{
    public static bool Available(string module) =>
        Directory.Exists(Path.Combine(RepoPaths.NpmModules, module)) && FindNode() is not null;

    public static string? FindNode() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(dir => Path.Combine(dir, "node")).FirstOrDefault(File.Exists);

    /// <param name="script">JavaScript with the text in <c>text</c>; it must print a JSON array of ids.</param>
    public static int[] Encode(string script, string text)
    {
        using var temp = new TempFolder("lowrank-node");
        var textFile = temp.File("text.txt");
        File.WriteAllText(textFile, text);
        var program = $"const text = require('fs').readFileSync({JsonSerializer.Serialize(textFile)}, 'utf8');\n{script}";
        var run = ProcessRunner.Run(FindNode()!, ["-e", program], Path.GetDirectoryName(RepoPaths.NpmModules)!,
            new ProcessOptions { Environment = new Dictionary<string, string?> { ["NODE_PATH"] = RepoPaths.NpmModules } });
        var stderr = string.Join('\n', run.Stderr);
        Assert.True(run.ExitCode == 0, "node failed: " + stderr[..Math.Min(2000, stderr.Length)]);
        return JsonSerializer.Deserialize<int[]>(run.StdoutText.Trim().Split('\n')[^1])!;
    }
}

/// <summary>A fact that needs node and an npm module from eng/setup.sh; skipped with the reason when either is missing.</summary>
public sealed class RequiresNodeModuleFactAttribute : FactAttribute
{
    public RequiresNodeModuleFactAttribute(string module)
    {
        if (!Directory.Exists(Path.Combine(RepoPaths.NpmModules, module))) Skip = $".data/npm/node_modules/{module} is not installed (run bash eng/setup.sh)";
        else if (NodeReference.FindNode() is null) Skip = "node is not on PATH (the reference tokenizer runs in node)";
    }
}
