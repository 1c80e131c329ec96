using System.CommandLine;
using LowRank.Artifacts;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank verify &lt;artifact&gt;</c>: re-hash every file against lowrank-manifest.json; exit 3 with LRK5002 on any difference.</summary>
public static class VerifyCommand
{
    public static Command Create()
    {
        var artifact = new Argument<string>("artifact") { Description = "A compressed artifact folder (holds lowrank-manifest.json)" };
        var json = CommonOptions.Json();
        var command = new Command("verify", "Check every file of a compressed artifact against the SHA-256 in its manifest; exit code 3 on any mismatch.")
        {
            artifact, json,
        };
        command.SetAction((parse, token) => Task.FromResult(Run(parse.GetValue(artifact)!, parse.GetValue(json), token)));
        return command;
    }

    /// <summary>Verifies, reports (text, --json or a jsonl result) and returns the exit code.</summary>
    public static int Run(string folder, bool json, CancellationToken token)
    {
        var result = ArtifactVerifier.Verify(folder, ToolProgress.Reporter, token);
        ToolProgress.Result(Summary(result), json, () => PrintOk(result));
        return ReportProblems(result);
    }

    public static object Summary(VerificationResult result) =>
        new { artifact = result.Folder, ok = result.Ok, filesChecked = result.FilesChecked, problems = result.Problems };

    public static void PrintOk(VerificationResult result)
    {
        if (result.Ok) Console.WriteLine($"{result.Folder}: ok ({result.FilesChecked} files match {ArtifactFormat.ManifestFileName})");
    }

    /// <summary>One <c>error LRK5002</c> line per problem on stderr (and an error event under jsonl); the exit code.</summary>
    public static int ReportProblems(VerificationResult result)
    {
        if (result.Ok) return ExitCodes.Success;
        foreach (var problem in result.Problems)
        {
            var message = $"{Path.Combine(result.Folder, problem.Path)}: {problem.Problem}";
            Console.Error.WriteLine($"error {ErrorCodes.HashMismatch}: {message}");
            ToolProgress.Error(ErrorCodes.HashMismatch, message);
        }
        return ExitCodes.CheckFailed;
    }
}
