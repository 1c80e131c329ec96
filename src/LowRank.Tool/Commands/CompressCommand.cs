using System.CommandLine;
using LowRank.Compression;
using LowRank.Torch;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank compress</c>: a thin shell over <see cref="CompressionJob"/>.</summary>
public static class CompressCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Model folder (HF layout: config.json, *.safetensors, tokenizer)" };
        var method = new Option<string>("--method") { Description = $"Compression method: {string.Join(", ", CompressionMethods.ValidNames)}", Required = true };
        var ratio = new Option<double>("--ratio") { Description = "Fraction of the block linears' parameters to REMOVE, in (0, 1) (0.2 keeps 80%)", Required = true };
        var calib = new Option<string?>("--calib") { Description = "Calibration text: a file, folder or npm:<corpus> (needed by every method but SVD)" };
        var calibStart = new Option<long?>("--calib-start") { Description = "First byte of the calibration text to use" };
        var calibEnd = new Option<long?>("--calib-end") { Description = "Byte after the last one to use" };
        var protocol = new Option<string>("--calib-protocol") { Description = "stream (paragraphs joined by one newline token) or plain", DefaultValueFactory = _ => "stream" };
        var samples = new Option<int>("--samples") { Description = "Calibration samples N", DefaultValueFactory = _ => 256 };
        var seqLen = new Option<int?>("--seq-len") { Description = "Tokens per calibration sample L (default: 2048 or the model's context if shorter)" };
        var seed = new Option<int>("--seed") { Description = "Seed of the calibration sampler (and of AdaSVD's shuffle)", DefaultValueFactory = _ => 42 };
        var batch = new Option<int>("--batch-size") { Description = "Calibration samples per forward pass (memory only; the result does not depend on it)", DefaultValueFactory = _ => 8 };
        var set = new Option<string[]>("--set") { Description = "Any compression option as Name=Value, repeatable (e.g. AdaSvdIterations=3, Propagation=Compressed)", AllowMultipleArgumentsPerToken = false };
        var output = new Option<string>("--out") { Description = "Output folder (written atomically)", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace --out if it exists" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var libTorch = CommonOptions.LibTorch();
        var command = new Command("compress", "Compress a model's block linears with a low-rank method and write the compressed model.")
        {
            model, method, ratio, calib, calibStart, calibEnd, protocol, samples, seqLen, seed, batch, set, output, force, device, json, libTorch,
        };
        command.SetAction((parse, token) =>
        {
            var options = new CompressionOptions
            {
                Method = CompressionMethods.Parse(parse.GetValue(method)),
                Ratio = parse.GetValue(ratio),
                BatchSize = parse.GetValue(batch),
                Seed = parse.GetValue(seed),
            };
            options = CompressionOptionsText.Apply(options, parse.GetValue(set) ?? []);
            options.Validate();
            var asJson = parse.GetValue(json);
            var progress = new Progress(asJson);
            var result = CompressionJob.Run(new CompressionJobOptions
            {
                Model = parse.GetValue(model)!,
                Out = parse.GetValue(output)!,
                Compression = options,
                Calibration = parse.GetValue(calib),
                CalibrationByteStart = parse.GetValue(calibStart),
                CalibrationByteEnd = parse.GetValue(calibEnd),
                CalibrationProtocol = parse.GetValue(protocol)!,
                Samples = parse.GetValue(samples),
                SeqLen = parse.GetValue(seqLen),
                CalibrationSeed = parse.GetValue(seed),
                Device = TorchBackend.ParseDevice(parse.GetValue(device)),
                LibTorch = parse.GetValue(libTorch),
                Force = parse.GetValue(force),
            }, progress, token);
            // Under --progress jsonl the result is the last JSON line on stdout (ToolProgress), else --json or text.
            ToolProgress.Result(new { output = result.Out, report = result.Report, calibration = result.Calibration }, asJson, () =>
            {
                var r = result.Report.Ratio;
                Console.WriteLine($"{result.Report.Method} → {result.Out}");
                Console.WriteLine($"ratio (removed)   requested {r.RequestedRatio:F4}   achieved {r.AchievedLinearRatio:F4} of the block linears, {r.AchievedModelRatio:F4} of the model");
                Console.WriteLine($"parameters        linears {r.LinearParametersBefore:N0} → {r.LinearParametersAfter:N0}   model {r.ModelParametersBefore:N0} → {r.ModelParametersAfter:N0}" +
                    (r.DenseFallbacks > 0 ? $"   ({r.DenseFallbacks} linear(s) left dense)" : ""));
                if (result.Calibration is { } c) Console.WriteLine($"calibration       {c.Samples} × {c.SeqLen} tokens from {c.Source} ({c.TokenProtocol.Name} protocol, seed {c.Seed})");
                Console.WriteLine($"time              {string.Join("   ", result.Report.Seconds.Select(p => $"{p.Key} {p.Value:F1} s"))}   on {result.Report.Device}");
            });
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    /// <summary>Progress on stderr: one line per event (JSON lines with --json, so stdout stays one JSON document).</summary>
    private sealed class Progress(bool json) : IProgress<CompressionProgress>
    {
        public void Report(CompressionProgress value)
        {
            if (ToolProgress.Mode == ProgressMode.Jsonl)
            {
                // The --progress jsonl protocol (ToolEvent): block is 0-based there, 1-based in CompressionProgress.
                ToolProgress.Progress(value.Stage, value.Message, value.Blocks > 0 ? value.Block - 1 : null, value.Blocks > 0 ? value.Blocks : null);
                return;
            }
            Console.Error.WriteLine(json
                ? System.Text.Json.JsonSerializer.Serialize(new { @event = "progress", stage = value.Stage, block = value.Block, blocks = value.Blocks, message = value.Message })
                : $"[{value.Stage}] {value.Message}");
        }
    }
}
