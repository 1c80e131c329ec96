using System.CommandLine;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank config</c>: which lowrank.json files and LOWRANK_* variables apply here, and every value they set.</summary>
public static class ConfigCommand
{
    public static Command Create()
    {
        var json = CommonOptions.Json();
        var command = new Command("config", $"Show the configuration layers that apply in this directory ({ToolConfiguration.FileName} files, LOWRANK_* variables, --config) and their values, lowest precedence first.")
        {
            json,
        };
        command.SetAction((parse, _) =>
        {
            var layers = ToolConfiguration.LoadLayers(Environment.CurrentDirectory, parse.GetValue<string?>("--config"), parse.GetValue<bool>("--no-config"));
            var view = new
            {
                userFile = ToolConfiguration.UserConfigFile(),
                layers = layers.Select(l => new { source = l.Source, values = l.Values }).ToList(),
            };
            ToolProgress.Result(view, parse.GetValue(json), () =>
            {
                Console.WriteLine($"user file: {view.userFile}{(File.Exists(view.userFile) ? "" : " (absent)")}");
                if (layers.Count == 0) Console.WriteLine("no configuration applies here");
                foreach (var layer in layers)
                {
                    Console.WriteLine(layer.Source);
                    foreach (var (key, value) in layer.Values) Console.WriteLine($"  {key} = {value}");
                }
            });
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }
}
