using System.CommandLine;
using System.Globalization;
using LowRank.Bench;
using LowRank.Bench.Inference;
using LowRank.Torch;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank bench inference</c>: dense versus compressed at inference time (BENCHMARKS.md's inference table).</summary>
public static class InferenceBenchCommand
{
    public static Command Create()
    {
        var shape = new Option<string?>("--shape") { Description = "A synthetic LLaMA shape with random weights: 7b, 13b, 70b, tiny or cpu (hidden 2048, 16 layers); none: only --model", DefaultValueFactory = _ => "cpu" };
        var layers = new Option<int?>("--layers") { Description = "Blocks of the shape to build (default: all)" };
        var models = new Option<string[]>("--model") { Description = "Model folders to measure too (compressed variants: SVD at each ratio); repeatable", AllowMultipleArgumentsPerToken = true };
        var ratios = new Option<string>("--ratios") { Description = "Compression ratios (fraction removed), comma-separated", DefaultValueFactory = _ => "0.2,0.4,0.6" };
        var rankMultiple = new Option<int>("--rank-multiple") { Description = "Round the synthetic ranks down to a multiple of this", DefaultValueFactory = _ => 1 };
        var runtimes = new Option<string>("--runtimes") { Description = "onnx, torch or both (comma-separated)", DefaultValueFactory = _ => "onnx,torch" };
        var prefill = new Option<int>("--prefill") { Description = "Prefill length (batch 1)", DefaultValueFactory = _ => 512 };
        var batches = new Option<string>("--batches") { Description = "Decode batch sizes, comma-separated", DefaultValueFactory = _ => "1,16" };
        var steps = new Option<int>("--steps") { Description = "Timed decode steps per batch size", DefaultValueFactory = _ => 16 };
        var threads = new Option<int?>("--threads") { Description = "Threads per runtime (default: one per core)" };
        var dtype = CommonOptions.ComputeDtype("fp32 (default; CPU) or fp16 (GPU)");
        var work = new Option<string>("--work") { Description = "Folder for the checkpoints and exports (each deleted after it was measured)", DefaultValueFactory = _ => Path.Combine(Path.GetTempPath(), "lowrank-bench-inference") };
        var outputFile = CommonOptions.Output<string?>("Also write the JSON report to this file");
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var command = new Command("inference", "Dense versus compressed at inference time: bytes on disk, resident and peak memory, prefill and decode tokens/s, with ONNX Runtime and TorchSharp.")
        {
            shape, layers, models, ratios, rankMultiple, runtimes, prefill, batches, steps, threads, dtype, work, outputFile, device, json,
        };
        command.SetAction((parse, token) =>
        {
            var shapeName = parse.GetValue(shape);
            var options = new InferenceBenchmarkOptions
            {
                Shape = string.IsNullOrEmpty(shapeName) || shapeName == "none" ? null : ScaleShape.Parse(shapeName),
                Layers = parse.GetValue(layers),
                Models = parse.GetValue(models) ?? [],
                Ratios = Numbers(parse.GetValue(ratios)!, double.Parse),
                RankMultiple = parse.GetValue(rankMultiple),
                Runtimes = Runtimes(parse.GetValue(runtimes)!),
                PrefillTokens = parse.GetValue(prefill),
                DecodeBatches = Numbers(parse.GetValue(batches)!, int.Parse),
                DecodeSteps = parse.GetValue(steps),
                Threads = parse.GetValue(threads),
                Dtype = parse.GetValue(dtype),
                Device = parse.GetValue(device),
                Work = parse.GetValue(work)!,
            };
            var asJson = parse.GetValue(json);
            var file = parse.GetValue(outputFile);
            void Save(InferenceBenchmarkReport partial)
            {
                if (file is not null) File.WriteAllText(file, InferenceBenchmark.ToJson(partial).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
            }
            var report = InferenceBenchmark.Run(options, asJson ? null : Console.WriteLine, Save, token);
            var document = InferenceBenchmark.ToJson(report);
            Save(report);
            if (asJson) Output.WriteJson(document);
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static T[] Numbers<T>(string text, Func<string, IFormatProvider, T> parse) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(t =>
        {
            try
            {
                return parse(t, CultureInfo.InvariantCulture);
            }
            catch (FormatException)
            {
                throw new LrkException(ErrorCodes.BadArgument, $"'{t}' is not a number");
            }
        }).ToArray();

    private static InferenceRuntime[] Runtimes(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(t => t.ToLowerInvariant() switch
        {
            "onnx" or "onnxruntime" or "ort" => InferenceRuntime.OnnxRuntime,
            "torch" or "torchsharp" => InferenceRuntime.TorchSharp,
            _ => throw new LrkException(ErrorCodes.BadArgument, $"unknown runtime '{t}': use onnx or torch"),
        }).Distinct().ToArray();
}
