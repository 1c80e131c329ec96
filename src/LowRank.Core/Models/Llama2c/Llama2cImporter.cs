using System.Text.Json;
using System.Text.Json.Nodes;
using LowRank.Models.Tokenizers;
using static TorchSharp.torch;

namespace LowRank.Models.Llama2c;

/// <summary>What an import wrote.</summary>
public sealed record Llama2cImportResult(string Folder, int TensorCount, long Parameters, IReadOnlyList<string> Files);

/// <summary>
/// Converts a llama2.c checkpoint (legacy v0) and its tokenizer.bin into a standard HF LlamaForCausalLM folder:
/// config.json, model.safetensors (HF tensor names, q/k rows permuted to the rotate-half RoPE layout, fp32),
/// tokenizer.bin (copied; <see cref="TokenizerLoader"/> picks it up) and a tokenizer_config.json naming BOS/EOS.
/// The folder is assembled under a temporary name next to <c>--out</c> and renamed into place at the end, so an
/// interrupted import leaves nothing that looks like a model.
/// </summary>
public static class Llama2cImporter
{
    public static Llama2cImportResult Import(string checkpointPath, string tokenizerPath, string outFolder, bool force = false,
        CancellationToken cancellationToken = default)
    {
        // An existing empty --out is filled without --force; anything else follows the writers' output checks.
        var emptyFolder = Directory.Exists(outFolder) && !Directory.EnumerateFileSystemEntries(outFolder).Any();
        IO.OutputFolderCheck.Check(outFolder, force || emptyFolder, checkpointPath, tokenizerPath);
        var checkpoint = Llama2cCheckpoint.Open(checkpointPath);
        var tokenizer = Llama2cTokenizer.Load(tokenizerPath);
        if (tokenizer.VocabSize != checkpoint.VocabSize)
            throw new LrkException(ErrorCodes.BadTokenizer,
                $"{tokenizerPath} has {tokenizer.VocabSize} tokens but {checkpointPath} has a vocabulary of {checkpoint.VocabSize}: they do not belong together");

        var target = Path.GetFullPath(outFolder);
        if (File.Exists(target)) throw new LrkException(ErrorCodes.OutputExists, $"--out {outFolder} is a file");
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any() && !force)
            throw new LrkException(ErrorCodes.OutputExists, $"--out {outFolder} exists and is not empty (use --force to replace it)");
        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(target)}.import-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        try
        {
            var config = checkpoint.HfConfig();
            WriteJson(Path.Combine(temp, "config.json"), config);
            var specs = checkpoint.Tensors.Select(t => new TensorSpec(t.Key, ScalarType.Float32, t.Value, () =>
            {
                cancellationToken.ThrowIfCancellationRequested();
                return checkpoint.Load(t.Key);
            })).ToList();
            var metadata = new Dictionary<string, string>
            {
                ["format"] = "pt",
                ["source"] = "llama2.c v0 checkpoint " + Path.GetFileName(checkpointPath) + ", imported by dotnet lowrank",
            };
            SafeTensorsWriter.WriteModel(temp, specs, metadata);
            File.WriteAllBytes(Path.Combine(temp, Llama2cTokenizer.FileName), File.ReadAllBytes(tokenizerPath)); // a copy, not the source's permissions
            WriteJson(Path.Combine(temp, TokenizerSettings.FileName), new JsonObject
            {
                ["tokenizer_class"] = "Llama2cTokenizer",
                ["tokenizer_file"] = Llama2cTokenizer.FileName,
                ["bos_token"] = "<s>",
                ["eos_token"] = "</s>",
                ["unk_token"] = "<unk>",
                ["add_bos_token"] = true,
                ["add_eos_token"] = false,
                ["model_max_length"] = checkpoint.SeqLen,
            });
            cancellationToken.ThrowIfCancellationRequested();

            if (Directory.Exists(target))
            {
                var old = temp + ".old";
                Directory.Move(target, old);
                try
                {
                    Directory.Move(temp, target);
                }
                catch
                {
                    Directory.Move(old, target); // put the replaced folder back
                    throw;
                }
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(temp, target);
            }
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
        var parameters = checkpoint.Tensors.Sum(t => t.Value.Aggregate(1L, (a, b) => a * b));
        return new Llama2cImportResult(target, checkpoint.Tensors.Count, parameters,
            Directory.EnumerateFiles(target).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList()!);
    }

    private static void WriteJson(string path, JsonObject json) =>
        File.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
}
