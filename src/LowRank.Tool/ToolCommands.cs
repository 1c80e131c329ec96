using System.CommandLine;
using LowRank.Tool.Commands;

namespace LowRank.Tool;

/// <summary>The command tree of <c>dotnet lowrank</c> (Program runs it; CommandConventionsTests walks it).</summary>
public static class ToolCommands
{
    public static RootCommand CreateRoot()
    {
        var root = new RootCommand("dotnet lowrank: compress language models with SVD-based low-rank decomposition.");
        root.Subcommands.Add(DoctorCommand.Create());
        root.Subcommands.Add(CacheCommand.Create());
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(CompressCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(ImportCommand.Create());
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(VerifyCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(ConfigCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        return root;
    }
}
