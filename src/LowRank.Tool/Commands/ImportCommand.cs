using System.CommandLine;
using LowRank.Models.Llama2c;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank import llama2c</c>: converts other checkpoint formats into a standard HF model folder.</summary>
public static class ImportCommand
{
    public static Command Create()
    {
        var command = new Command("import", "Convert a checkpoint of another format into a Hugging Face model folder.");
        command.Subcommands.Add(Llama2c());
        return command;
    }

    private static Command Llama2c()
    {
        var checkpoint = new Argument<string>("model.bin") { Description = "A llama2.c checkpoint (legacy v0 format, as export.py --version 0 writes)" };
        var tokenizer = new Option<string>("--tokenizer") { Description = "The llama2.c tokenizer.bin that goes with it", Required = true };
        var output = CommonOptions.Output<string>("The folder to create (config.json, model.safetensors, tokenizer)", required: true);
        var force = new Option<bool>("--force") { Description = "Replace --output when it exists and is not empty" };
        var json = CommonOptions.Json();
        var command = new Command("llama2c", "Import a llama2.c checkpoint and tokenizer as an HF LlamaForCausalLM folder (q/k rows permuted to HF's rotate-half RoPE layout).")
        {
            checkpoint, tokenizer, output, force, json,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            LowRank.Torch.TorchBackend.Initialize(DeviceRequest.Cpu);
            var result = Llama2cImporter.Import(parse.GetValue(checkpoint)!, parse.GetValue(tokenizer)!, parse.GetValue(output)!,
                parse.GetValue(force), cancellationToken);
            if (parse.GetValue(json)) Output.WriteJson(result);
            else Console.WriteLine($"imported {result.TensorCount} tensors ({result.Parameters:N0} parameters) into {result.Folder}: {string.Join(", ", result.Files)}");
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }
}
