using System.Diagnostics;
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
        var textFile = Path.GetTempFileName();
        try
        {
            File.WriteAllText(textFile, text);
            var start = new ProcessStartInfo(FindNode()!)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = Path.GetDirectoryName(RepoPaths.NpmModules)!,
            };
            start.ArgumentList.Add("-e");
            start.ArgumentList.Add($"const text = require('fs').readFileSync({JsonSerializer.Serialize(textFile)}, 'utf8');\n{script}");
            start.Environment["NODE_PATH"] = RepoPaths.NpmModules;
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, "node failed: " + stderr.Result[..Math.Min(2000, stderr.Result.Length)]);
            return JsonSerializer.Deserialize<int[]>(stdout.Result.Trim().Split('\n')[^1])!;
        }
        finally
        {
            File.Delete(textFile);
        }
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
