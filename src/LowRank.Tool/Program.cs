using System.CommandLine;
using System.Globalization;
using LowRank.Tool;
using LowRank.Tool.Commands;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.DefaultThreadCurrentUICulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

var root = new RootCommand("dotnet lowrank: compress language models with SVD-based low-rank decomposition.");
root.Subcommands.Add(DoctorCommand.Create());
root.Subcommands.Add(CompressCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(InspectCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(ImportCommand.Create());
return await CommandRunner.InvokeAsync(root, args);
