using System.CommandLine;
using System.Globalization;
using LowRank.Tool;
using LowRank.Tool.Commands;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.DefaultThreadCurrentUICulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

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
return await CommandRunner.InvokeAsync(root, args);
