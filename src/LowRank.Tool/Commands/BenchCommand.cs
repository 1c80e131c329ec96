using System.CommandLine;
using System.Globalization;
using LowRank.Bench;
using LowRank.Compression;
using LowRank.Torch;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank bench methods</c>: the PPL table of every method × ratio (BENCHMARKS.md comes from it).</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Benchmarks that produce the numbers in BENCHMARKS.md.");
        command.Subcommands.Add(Methods());
        command.Subcommands.Add(Quant());
        command.Subcommands.Add(Gpu());
        command.Subcommands.Add(Parity());
        command.Subcommands.Add(Kernels());
        command.Subcommands.Add(Tasks());
        command.Subcommands.Add(InferenceBenchCommand.Create());
        command.Subcommands.Add(FuzzCommand.Create());
        return command;
    }

    private static Command Kernels()
    {
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var tokens = new Option<long>("--tokens") { Description = "Tokens of the Gram benchmark (one calibration batch)", DefaultValueFactory = _ => 32768 };
        var command = new Command("kernels", "Time the native CUDA kernels (half-precision Gram, concurrent eigh) against the torch paths they replace.") { device, json, tokens };
        command.SetAction((parse, _) =>
        {
            var torchDevice = TorchBackend.Device(parse.GetValue(device));
            var asJson = parse.GetValue(json);
            var results = KernelBenchmark.Run(torchDevice, parse.GetValue(tokens), log: asJson ? null : Console.WriteLine);
            if (asJson) Output.WriteJson(new { device = torchDevice.ToString(), kernels = LowRank.Torch.CudaNative.Status, results });
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static Command Parity()
    {
        var fixtures = new Argument<string>("fixtures") { Description = "Folder of parity fixtures (default: tests/fixtures/parity)", DefaultValueFactory = _ => Path.Combine("tests", "fixtures", "parity") };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var command = new Command("parity", "Compare our logits with the transformers reference logits of each parity fixture (max abs difference).") { fixtures, device, json };
        command.SetAction((parse, _) =>
        {
            var results = HfParity.CheckAll(parse.GetValue(fixtures)!, parse.GetValue(device));
            if (parse.GetValue(json)) Output.WriteJson(new { device = TorchBackend.Device(parse.GetValue(device)).ToString(), results });
            else foreach (var r in results) Console.WriteLine($"{r.Fixture,-10} {r.Architecture,-22} max |Δlogit| {r.MaxAbsDiff:E2} (max |logit| {r.MaxAbsReference:F3})");
            return Task.FromResult(results.All(r => r.MaxAbsDiff <= 1e-4) ? ExitCodes.Success : ExitCodes.CheckFailed);
        });
        return command;
    }

    private static Command Gpu()
    {
        var shape = new Option<string>("--shape") { Description = "Model shape: 7b, 13b, 70b (LLaMA-2) or tiny", DefaultValueFactory = _ => "7b" };
        var layers = new Option<int?>("--layers") { Description = "Decoder blocks to synthesise (default: all of the shape; fewer = per-block timing, extrapolated)" };
        var method = new Option<string>("--method") { Description = "Compression method", DefaultValueFactory = _ => "svd-llm" };
        var ratio = new Option<double>("--ratio") { Description = "Compression ratio (fraction removed)", DefaultValueFactory = _ => 0.5 }.Invariant();
        var samples = new Option<int>("--samples") { Description = "Calibration samples", DefaultValueFactory = _ => 256 };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per calibration sample", DefaultValueFactory = _ => 2048 };
        var batch = CommonOptions.BatchSize<int>("Calibration samples per block forward", () => 16);
        var work = new Option<string>("--work") { Description = "Folder for the synthetic checkpoint and the compressed output", Required = true };
        var seed = new Option<int>("--seed") { Description = "Seed of the weights and the calibration ids", DefaultValueFactory = _ => 1234 };
        var noWrite = new Option<bool>("--no-write") { Description = "Skip writing the compressed artifact" };
        var writeAtEnd = new Option<bool>("--write-at-end") { Description = "Write the whole artifact after compressing (default: block shards while compressing, as compress does)" };
        var set = new Option<string[]>("--set") { Description = "Compression option Name=Value, repeatable" };
        var output = CommonOptions.Output<string?>("Also write the JSON result to this file");
        var staging = new Option<string>("--checkpoint") { Description = "whole (synthesise the checkpoint on disk first), staged (write each block when first read, for checkpoints larger than the disk) or auto", DefaultValueFactory = _ => "auto" };
        var accuracy = new Option<string>("--accuracy") { Description = "Comma-separated block-0 linear kinds to check against fp64 (none = skip)", DefaultValueFactory = _ => "q_proj,gate_proj,down_proj" };
        var device = CommonOptions.Device();
        var command = new Command("gpu", "Synthesise a LLaMA-shaped random checkpoint, compress it end to end, print stage times, peak GPU memory and fp64 accuracy as JSON.")
        {
            shape, layers, method, ratio, samples, seqLen, batch, work, seed, noWrite, writeAtEnd, set, output, staging, accuracy, device,
        };
        command.SetAction((parse, token) =>
        {
            var result = ScaleBenchmark.Run(new ScaleBenchmarkOptions
            {
                Shape = ScaleShape.Parse(parse.GetValue(shape)!),
                Layers = parse.GetValue(layers),
                Method = CompressionMethods.Parse(parse.GetValue(method)!),
                Ratio = parse.GetValue(ratio),
                Samples = parse.GetValue(samples),
                SeqLen = parse.GetValue(seqLen),
                BatchSize = parse.GetValue(batch),
                WorkFolder = parse.GetValue(work)!,
                Seed = parse.GetValue(seed),
                WriteOutput = !parse.GetValue(noWrite),
                StreamWrite = !parse.GetValue(writeAtEnd),
                Set = parse.GetValue(set) ?? [],
                Staging = parse.GetValue(staging)!.Trim().ToLowerInvariant() switch
                {
                    "auto" => CheckpointStaging.Auto,
                    "whole" => CheckpointStaging.Whole,
                    "staged" => CheckpointStaging.Staged,
                    var other => throw new LrkException(ErrorCodes.BadArgument, $"--checkpoint '{other}': use whole, staged or auto"),
                },
                AccuracyKinds = parse.GetValue(accuracy)!.Trim() is "none" or "" ? []
                    : parse.GetValue(accuracy)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Device = parse.GetValue(device),
            }, line => Console.Error.WriteLine(line), token);
            if (parse.GetValue(output) is { } path)
            {
                var temp = path + ".tmp";
                File.WriteAllText(temp, System.Text.Json.JsonSerializer.Serialize(result, Output.JsonOptions));
                File.Move(temp, path, overwrite: true);
            }
            Output.WriteJson(result);
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static Command Tasks()
    {
        var text = new Option<string>("--text") { Description = "Held-out text the items are made from (a file, FILE[start:end] or npm:NAME)", Required = true };
        var textStart = new Option<long?>("--text-start") { Description = "First byte of the text" };
        var textEnd = new Option<long?>("--text-end") { Description = "Byte after the last byte of the text" };
        var pairs = new Option<int>("--pairs") { Description = "At most this many item pairs per task", DefaultValueFactory = _ => 200 };
        var name = new Option<string>("--name") { Description = "Task name prefix (files NAME_sentence.jsonl and NAME_word.jsonl)", DefaultValueFactory = _ => "cloze" };
        var output = CommonOptions.Output<string>("Folder to write the task files to", required: true);
        var command = new Command("tasks", "Make two paired-cloze zero-shot task files (next sentence, last word; chance exactly 1/2) from a held-out text.")
        {
            text, textStart, textEnd, pairs, name, output,
        };
        command.SetAction((parse, _) =>
        {
            var source = LowRank.Data.TextSources.Load(parse.GetValue(text)!, new LowRank.Data.TextSourceOptions { ByteStart = parse.GetValue(textStart), ByteEnd = parse.GetValue(textEnd) });
            var folder = parse.GetValue(output)!;
            Directory.CreateDirectory(folder);
            foreach (var kind in new[] { ClozeKind.Sentence, ClozeKind.Word })
            {
                var taskName = $"{parse.GetValue(name)}_{kind.ToString().ToLowerInvariant()}";
                var task = PairedCloze.Make(taskName, source.Text, kind, parse.GetValue(pairs), source.Description);
                var path = Path.Combine(folder, taskName + ".jsonl");
                PairedCloze.Write(task, path);
                Console.WriteLine($"{path}: {task.Items.Count} items ({kind.ToString().ToLowerInvariant()} cloze from {source.Description})");
            }
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static Command Methods()
    {
        var setup = new BenchSetupOptions("Perplexity window W (non-overlapping)", CompressionDefaults.Samples, "Compression option Name=Value for every run, repeatable");
        var methods = new Option<string>("--methods") { Description = "Comma-separated methods, 'all', or 'none' (only --variant rows)", DefaultValueFactory = _ => "all" };
        var variants = new Option<string[]>("--variant") { Description = "Extra row LABEL=METHOD[;Name=Value…] (an ablation), repeatable" };
        var heldOut = new Option<int>("--held-out") { Description = "Held-out calibration samples (disjoint from the calibration windows) whose perplexity is also reported", DefaultValueFactory = _ => 0 };
        var tasks = new Option<string[]>("--tasks") { Description = "Zero-shot task files scored for the original and every row", AllowMultipleArgumentsPerToken = true };
        var diagnose = new Option<bool>("--diagnose") { Description = "Per-block drift and per-linear errors of every row against the original (calibration and held-out samples)" };
        var ratios = new Option<string>("--ratios") { Description = "Comma-separated compression ratios (fraction removed)", DefaultValueFactory = _ => "0.2,0.4,0.6" };
        var markdown = new Option<string?>("--markdown") { Description = "Also write the table and the setup as Markdown to this file" };
        var json = CommonOptions.Json();
        var command = new Command("methods", "Compress a model with every method at every ratio and report WikiText-style perplexity.")
        {
            methods, variants, ratios, heldOut, tasks, diagnose, markdown, json,
        };
        setup.AddTo(command);
        command.SetAction((parse, token) =>
        {
            var methodText = parse.GetValue(methods)!;
            var methodList = methodText.Trim().ToLowerInvariant() switch
            {
                "all" => CompressionMethods.LowRank.ToArray(),
                "none" => [],
                _ => methodText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(CompressionMethods.Parse).ToArray(),
            };
            var variantList = (parse.GetValue(variants) ?? []).Select(MethodVariant.Parse).ToArray();
            if (methodList.Length == 0 && variantList.Length == 0) throw new LrkException(ErrorCodes.BadArgument, "no rows: give --methods or --variant");
            var ratioList = parse.GetValue(ratios)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(r => CompressionRatio.Parse(r, "--ratios")).ToArray();
            var asJson = parse.GetValue(json);
            var result = MethodBenchmark.Run(setup.Fill(new MethodBenchmarkOptions
            {
                Model = "", Calibration = new(), Evaluation = "", // set by Fill
                Methods = methodList,
                Variants = variantList,
                Ratios = ratioList,
                HeldOut = parse.GetValue(heldOut),
                Tasks = parse.GetValue(tasks) ?? [],
                Diagnose = parse.GetValue(diagnose),
            }, parse), line => Console.Error.WriteLine(line), token);
            var table = Describe(result, parse.GetValue(setup.Set) ?? []);
            if (parse.GetValue(markdown) is { } path)
            {
                var temp = path + ".tmp";
                File.WriteAllText(temp, table);
                File.Move(temp, path, overwrite: true);
            }
            if (asJson) Output.WriteJson(result);
            else Console.WriteLine(table);
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static Command Quant()
    {
        var setup = new BenchSetupOptions("Perplexity window W (non-overlapping; at most the model's context)", QuantBenchmarkOptions.DefaultSamples, "Compression option Name=Value for every run, repeatable (e.g. GroupSize=64)");
        var methods = new Option<string>("--methods") { Description = "Comma-separated low-rank methods", DefaultValueFactory = _ => "svd-llm,adasvd,lc-svd" };
        var ratios = new Option<string>("--ratios") { Description = "Comma-separated compression ratios of the low-rank methods", DefaultValueFactory = _ => "0.2,0.4,0.6" };
        var factorDtypes = CommonOptions.Typed<IReadOnlyList<FactorStorage>>("--factor-dtypes", "Comma-separated factor storages: fp16, int8, int4[-gN][-zp], int3…",
            text => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(storage => FactorStorage.Parse(storage, "--factor-dtypes", ErrorCodes.BadArgument)).ToArray(),
            () => QuantBenchmarkOptions.DefaultFactorDtypes, "fp16,int8,int4");
        var bits = new Option<string>("--bits") { Description = "Comma-separated bit widths of the rtn and gptq baselines", DefaultValueFactory = _ => "8,4,3" };
        var targetBits = new Option<string>("--target-bits") { Description = "Comma-separated --target-bits budgets (SVD-LLM allocation)", DefaultValueFactory = _ => "3,4" };
        var report = new Option<string?>("--report") { Description = "Folder for quant-<model>.json, .md and .png (perplexity against bytes)" };
        var json = CommonOptions.Json();
        var command = new Command("quant", "Perplexity against the bytes of the block linears: dense fp16, RTN and GPTQ, the low-rank methods with fp16/int8/int4 factors, --target-bits.")
        {
            methods, ratios, factorDtypes, bits, targetBits, report, json,
        };
        setup.AddTo(command);
        command.SetAction((parse, token) =>
        {
            static string[] List(string text) => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            static double Number(string text) => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
                : throw new LrkException(ErrorCodes.BadArgument, $"'{text}' is not a number");
            var ratioList = List(parse.GetValue(ratios)!).Select(r => CompressionRatio.Parse(r, "--ratios")).ToArray();
            var methodList = List(parse.GetValue(methods)!).Select(CompressionMethods.Parse).ToArray();
            if (methodList.FirstOrDefault(m => m.IsQuantizationOnly()) is var q && q.IsQuantizationOnly())
                throw new LrkException(ErrorCodes.BadArgument, $"--methods lists the low-rank methods; {q.Name()} is always measured");
            var result = QuantBenchmark.Run(setup.Fill(new QuantBenchmarkOptions
            {
                Model = "", Calibration = new(), Evaluation = "", // set by Fill
                Methods = methodList,
                Ratios = ratioList,
                FactorDtypes = parse.GetValue(factorDtypes)!,
                Bits = List(parse.GetValue(bits)!).Select(b => (int)Number(b)).ToArray(),
                TargetBits = List(parse.GetValue(targetBits)!).Select(Number).ToArray(),
            }, parse), line => Console.Error.WriteLine(line), token);
            var c = result.Calibration;
            var text = $"""
                Model: {result.Model} ({result.LinearWeights:N0} block-linear weights)
                Evaluation: {result.Evaluation}; protocol {result.Protocol}, windows of {result.Window} tokens, {result.ScoredTokens:N0} tokens
                Calibration: {c.Samples} × {c.SeqLen} tokens from {c.Source} (seed {c.Seed}, {c.TokenProtocol.Name} protocol)
                Options: {(parse.GetValue(setup.Set) is { Length: > 0 } s ? string.Join(" ", s) : "defaults")}
                Device: {result.Device}; machine: {result.Machine}; {result.DateUtc}

                {result.Markdown()}
                """;
            if (parse.GetValue(report) is { } folder)
            {
                Directory.CreateDirectory(folder);
                var name = "quant-" + Path.GetFileName(Path.TrimEndingDirectorySeparator(result.Model));
                Reports.ReportFiles.WriteText(Path.Combine(folder, name + ".md"), text);
                Reports.ReportFiles.WriteText(Path.Combine(folder, name + ".json"), System.Text.Json.JsonSerializer.Serialize(result, Output.JsonOptions) + "\n");
                ReportPlots.PerplexityVsBytes(result.Points.Select(p => (p.Series, (double)p.Bytes, p.Perplexity)), Path.Combine(folder, name + ".png"),
                    $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(result.Model))}: perplexity vs size of the block linears");
            }
            if (parse.GetValue(json)) Output.WriteJson(result);
            else Console.WriteLine(text);
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static string Describe(MethodBenchmarkResult result, string[] set)
    {
        var c = result.Calibration;
        var seconds = result.Rows.GroupBy(r => r.Label)
            .Select(g => $"{g.Key} {string.Join("/", g.Select(r => r.CompressSeconds.ToString("F1", CultureInfo.InvariantCulture)))} s");
        return $"""
            Model: {result.Model}
            Evaluation: {result.Evaluation}; protocol {result.Protocol}, windows of {result.Window} tokens, {result.ScoredTokens:N0} scored tokens
            Calibration: {c.Samples} × {c.SeqLen} tokens from {c.Source} (seed {c.Seed}, {c.TokenProtocol.Name} protocol)
            Options: {(set.Length == 0 ? "defaults" : string.Join(" ", set))}
            Device: {result.Device}; machine: {result.Machine}; {result.DateUtc}

            {result.Markdown()}
            {result.DiagnosisMarkdown()}
            Compression time per ratio: {string.Join("; ", seconds)}

            """;
    }
}
