using System.CommandLine;
using System.Diagnostics;
using LowRank.Models;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank generate &lt;model&gt;</c>: greedy or sampled text from a prompt (or from BOS), streamed to stdout.</summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A model folder, or a Hugging Face id in the local cache (org/name)" };
        var prompt = new Option<string?>("--prompt") { Description = "Text to continue; without it generation starts from BOS" };
        var maxNewTokens = new Option<int>("--max-new-tokens") { Description = "Most tokens to generate", DefaultValueFactory = _ => 128 };
        var temperature = new Option<double>("--temperature") { Description = "0 = greedy (argmax); otherwise sample from softmax(logits / T)", DefaultValueFactory = _ => 0.0 }.Invariant();
        var seed = new Option<long>("--seed") { Description = "Seed of the sampler (temperature > 0)", DefaultValueFactory = _ => 0 };
        var dtype = CommonOptions.ComputeDtype("Compute dtype: fp32, fp16 or bf16");
        var streamBlocks = new Option<bool>("--stream-blocks") { Description = "Keep weights on the host and move one block at a time to the device (models larger than device memory)" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var libTorch = CommonOptions.LibTorch();
        var command = new Command("generate", "Generate text with a model: greedy by default, streamed token by token; without --prompt it starts from BOS.")
        {
            model, prompt, maxNewTokens, temperature, seed, dtype, streamBlocks, device, json, libTorch,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var options = new ModelLoadOptions
            {
                Device = parse.GetValue(device),
                LibTorch = parse.GetValue(libTorch),
                ComputeDtype = parse.GetValue(dtype),
                StreamBlocks = parse.GetValue(streamBlocks),
            };
            using var loaded = ModelLoader.Load(parse.GetValue(model)!, options);
            var tokenizer = loaded.Tokenizer ?? throw new LrkException(ErrorCodes.BadTokenizer,
                $"{loaded.Folder} has no tokenizer (tokenizer.bin, tokenizer.json, tokenizer.model or vocab.json + merges.txt)");
            var text = parse.GetValue(prompt);
            var bos = tokenizer.BosId ?? loaded.Config.BosTokenId;
            IReadOnlyList<int> promptIds = string.IsNullOrEmpty(text)
                ? bos is { } b ? [b] : throw new LrkException(ErrorCodes.BadArgument, "the model has no BOS token: give a --prompt")
                : tokenizer.Encode(text, addBos: tokenizer.AddsBosByDefault);
            if (promptIds.Count == 0) throw new LrkException(ErrorCodes.BadArgument, "the prompt encodes to no tokens");
            var stops = new HashSet<int>(loaded.Config.EosTokenIds);
            foreach (var id in new[] { tokenizer.BosId, tokenizer.EosId, loaded.Config.BosTokenId, loaded.Config.EosTokenId })
            {
                if (id is { } stop) stops.Add(stop);
            }
            var generation = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNewTokens),
                Temperature = parse.GetValue(temperature),
                Seed = parse.GetValue(seed),
                StopTokens = stops,
            };

            var asJson = parse.GetValue(json);
            var all = new List<int>(promptIds);
            var printed = "";
            void Print()
            {
                // Decode everything so far and print what is new: keeps multi-byte characters and the tokenizer's
                // space rules intact; an incomplete UTF-8 sequence (U+FFFD at the end) waits for its next byte.
                var decoded = tokenizer.Decode(all);
                if (decoded.EndsWith('\uFFFD') || !decoded.StartsWith(printed, StringComparison.Ordinal)) return;
                Console.Write(decoded[printed.Length..]);
                printed = decoded;
            }
            if (!asJson) Print();
            var clock = Stopwatch.StartNew();
            var result = TextGenerator.Generate(loaded.Model, promptIds, generation, token =>
            {
                all.Add(token);
                if (!asJson) Print();
            }, cancellationToken);
            var seconds = clock.Elapsed.TotalSeconds;
            var full = tokenizer.Decode(all);
            var promptText = tokenizer.Decode(promptIds);
            if (asJson)
            {
                Output.WriteJson(new
                {
                    model = loaded.Folder,
                    architecture = loaded.Config.Architecture,
                    device = loaded.Model.Device.ToString(),
                    dtype = options.ComputeDtype.ToString(),
                    promptIds,
                    newIds = result.NewIds,
                    text = full,
                    completion = full.StartsWith(promptText, StringComparison.Ordinal) ? full[promptText.Length..] : tokenizer.Decode(result.NewIds),
                    stopReason = result.StopReason.ToString(),
                    stopToken = result.StopToken,
                    seconds,
                    tokensPerSecond = result.NewIds.Count / Math.Max(seconds, 1e-9),
                });
            }
            else
            {
                if (full.Length > printed.Length && full.StartsWith(printed, StringComparison.Ordinal)) Console.Write(full[printed.Length..]);
                Console.WriteLine();
                Console.Error.WriteLine($"{result.NewIds.Count} tokens in {seconds:F2} s ({result.NewIds.Count / Math.Max(seconds, 1e-9):F1} tokens/s) on {loaded.Model.Device}; " +
                    $"stopped: {result.StopReason switch { StopReason.StopToken => $"stop token {result.StopToken}", StopReason.MaxNewTokens => "--max-new-tokens", _ => "max positions" }}");
            }
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }
}
