using System.CommandLine;
using LowRank.Artifacts;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank export &lt;artifact&gt; --dense --out DIR</c>: an ordinary dense HF checkpoint (W = A·B) for consumers without low-rank support.</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var artifact = new Argument<string>("artifact") { Description = "A compressed artifact folder" };
        var dense = new Option<bool>("--dense") { Description = "Multiply the factors back into dense weights (the only export format so far; required)" };
        var output = new Option<string>("--out") { Description = "Output folder (written atomically)", Required = true };
        var dtype = new Option<string?>("--dtype") { Description = "Dtype of the merged weights: fp32, fp16 or bf16 (default: the config's torch_dtype)" }
            .Checked(value => FactorDtypes.Parse((string)value!));
        var force = new Option<bool>("--force") { Description = "Replace --out if it exists" };
        var json = CommonOptions.Json();
        var command = new Command("export", "Write a compressed artifact as an ordinary dense Hugging Face checkpoint (W = A·B, no lowrank section) that transformers loads.")
        {
            artifact, dense, output, dtype, force, json,
        };
        command.SetAction((parse, token) =>
        {
            if (!parse.GetValue(dense))
                throw new LrkException(ErrorCodes.BadArgument, "say which export: --dense (an ordinary dense checkpoint) is the only format");
            Torch.TorchBackend.Initialize(Torch.DeviceRequest.Cpu);
            var result = DenseExporter.Export(parse.GetValue(artifact)!, parse.GetValue(output)!, new DenseExportOptions
            {
                Dtype = parse.GetValue(dtype) is { } d ? FactorDtypes.Parse(d) : null,
                Overwrite = parse.GetValue(force),
            }, ToolProgress.Reporter, token);
            ToolProgress.Result(result, parse.GetValue(json), () =>
                Console.WriteLine($"{result.Folder}: dense {result.Dtype} checkpoint, {result.LinearsMerged} linears merged (W = A·B), {result.Parameters:N0} parameters"));
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }
}
