using System.CommandLine;
using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Evaluation;
using LowRank.Jobs;
using LowRank.Quantization;
using LowRank.Torch;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank compress</c>: a thin shell over <see cref="CompressionJob"/>.</summary>
public static class CompressCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Model folder (HF layout: config.json, *.safetensors, tokenizer)" };
        var method = new Option<string>("--method") { Description = $"Compression method: {string.Join(", ", CompressionMethods.ValidNames)}", Required = true }
            .Checked(value => CompressionMethods.Parse(value as string));
        var ratio = new Option<double?>("--ratio")
        {
            Description = "Fraction of the block linears' parameters to REMOVE, in (0, 1) (0.2 keeps 80%); required by the low-rank methods, ignored by rtn/gptq",
            CustomParser = result => CommonOptions.Parsed(result, text => CompressionRatio.Parse(text, "--ratio")),
        };
        var bits = new Option<int?>("--bits") { Description = "rtn/gptq: bits per weight, 8 (per output channel), 4 or 3 (group-wise, --group-size)" };
        var targetBits = new Option<double?>("--target-bits") { Description = "SVD-LLM: instead of --ratio, a budget in bits per original weight of the block linears; every linear's rank and storage (int8/int4 factors, or dense GPTQ 8/4/3-bit or fp16) are chosen under it" }.Invariant();
        var groupSize = new Option<int?>("--group-size") { Description = "Input columns per scale of 4- and 3-bit storage: 32, 64 or 128 (default 128)" };
        var calib = new Option<string?>("--calib") { Description = "Calibration text: a file, folder or npm:<corpus> (needed by every method but SVD)" };
        var calibStart = new Option<long?>("--calib-start") { Description = "First byte of the calibration text to use" };
        var calibEnd = new Option<long?>("--calib-end") { Description = "Byte after the last one to use" };
        var protocol = CommonOptions.Protocol("Text → token protocol of the calibration text: stream (paragraphs joined by one newline token) or plain", "--calib-protocol");
        var samples = new Option<int>("--samples") { Description = "Calibration samples N", DefaultValueFactory = _ => CompressionDefaults.Samples };
        var seqLen = new Option<int?>("--seq-len") { Description = "Tokens per calibration sample L (default: 2048 or the model's context if shorter)" };
        var seed = new Option<int>("--seed") { Description = "Seed of the calibration sampler (and of AdaSVD's shuffle)", DefaultValueFactory = _ => CompressionDefaults.Seed };
        var batch = CommonOptions.BatchSize<int>("Calibration samples per forward pass (memory only; the result does not depend on it)", () => CompressionDefaults.BatchSize);
        var set = new Option<string[]>("--set") { Description = "Any compression option as Name=Value, repeatable (e.g. AdaSvdIterations=3, Propagation=Compressed)", AllowMultipleArgumentsPerToken = false };
        var factorDtype = new Option<string?>("--factor-dtype") { Description = $"Dtype of the stored factors: fp32, fp16, bf16 (default: the model's torch_dtype), or quantized: {QuantFormat.Spellings}" }
            .Checked(value => FactorDtypeNames.Canonical((string)value!, "--factor-dtype", ErrorCodes.BadArgument));
        var evalText = new Option<string?>("--eval") { Description = "Measure perplexity on this text (file, folder or npm:<corpus>) before and after compressing; recorded in the manifest" };
        var evalStart = new Option<long?>("--eval-start") { Description = "First byte of the evaluation text to use" };
        var evalEnd = new Option<long?>("--eval-end") { Description = "Byte after the last one to use" };
        var evalWindow = new Option<int?>("--eval-window") { Description = "Perplexity window in tokens (default: the model's context, at most 2048)" };
        var output = CommonOptions.Output<string>("Output folder (written atomically: nothing appears there until the artifact is complete)", required: true);
        var force = new Option<bool>("--force") { Description = "Replace --output if it exists" };
        var format = new Option<string>("--format") { Description = "What to write: safetensors (the compressed artifact), onnx (its ONNX export only: model.onnx, genai_config.json, tokenizer), or safetensors;onnx (the artifact with the export in onnx/)", DefaultValueFactory = _ => ModelFormats.SafetensorsName }
            .Checked(value => ModelFormats.Parse((string)value!));
        var computeDtype = new Option<string>("--dtype") { Description = "Compute dtype while compressing: fp32, fp16 or bf16 (fp16/bf16 are faster on GPUs and change the result a little)", DefaultValueFactory = _ => "fp32" }
            .Checked(value => GenerateCommand.ParseDtype((string)value!));
        var streamBlocks = new Option<string>("--stream-blocks") { Description = "auto, on or off: keep only the block being compressed on the GPU, reading weights as needed (auto: on for GPUs, except FWSVD)", DefaultValueFactory = _ => "auto" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var libTorch = CommonOptions.LibTorch();
        var command = new Command("compress", "Compress a model's block linears with a low-rank method and write the compressed artifact.")
        {
            model, method, ratio, bits, targetBits, groupSize, calib, calibStart, calibEnd, protocol, samples, seqLen, seed, batch, set, factorDtype,
            evalText, evalStart, evalEnd, evalWindow, output, force, format, computeDtype, streamBlocks, device, json, libTorch,
        };
        command.Validators.Add(result =>
        {
            // --ratio is required by the low-rank methods; rtn/gptq take --bits instead (a ratio given to them, such as
            // MSBuild's default Ratio metadata, is ignored).
            string? methodText;
            double? ratioValue, targetBitsValue;
            int? bitsValue;
            try
            {
                methodText = result.GetValue(method);
                ratioValue = result.GetValue(ratio);
                targetBitsValue = result.GetValue(targetBits);
                bitsValue = result.GetValue(bits);
            }
            catch (InvalidOperationException)
            {
                return; // a bad or repeated --method, --ratio, --target-bits or --bits: the parser reports it
            }
            if (!CompressionMethods.TryParse(methodText, out var parsed)) return;
            if (parsed.IsQuantizationOnly())
            {
                if (bitsValue is null) result.AddError($"{ErrorCodes.BadMethodOption}: {parsed.Name()} needs --bits 8, 4 or 3");
            }
            else if (targetBitsValue is not null)
            {
                if (ratioValue is not null) result.AddError($"{ErrorCodes.BadRatio}: --target-bits sets the size; drop --ratio");
            }
            else if (ratioValue is null) result.AddError($"{ErrorCodes.BadRatio}: {parsed.Name()} needs --ratio (the fraction of the block linears' parameters to remove) or --target-bits");
        });
        command.SetAction((parse, token) =>
        {
            var parsedMethod = CompressionMethods.Parse(parse.GetValue(method));
            var options = new CompressionOptions
            {
                Method = parsedMethod,
                Ratio = parsedMethod.IsQuantizationOnly() ? 0 : parse.GetValue(ratio) ?? 0,
                Bits = parse.GetValue(bits),
                TargetBits = parse.GetValue(targetBits),
                BatchSize = parse.GetValue(batch),
                Seed = parse.GetValue(seed),
            };
            if (parse.GetValue(groupSize) is { } group) options = options with { GroupSize = group };
            options = CompressionOptionsText.Apply(options, parse.GetValue(set) ?? []);
            options.Validate();
            var factorSpelling = parse.GetValue(factorDtype) is { } spelling ? FactorDtypeNames.Canonical(spelling, "--factor-dtype", ErrorCodes.BadArgument) : null;
            FactorDtype? floatFactors = factorSpelling is not null && FactorDtypes.TryParse(factorSpelling, out var dtype) ? dtype : null;
            var quantizedFactors = factorSpelling is not null && floatFactors is null ? options.FactorFormat(factorSpelling) : (QuantFormat?)null;
            var outputs = CompressionOutputs.Run(new CompressionJobOptions
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
                FactorDtype = floatFactors,
                FactorFormat = quantizedFactors,
                Evaluation = parse.GetValue(evalText) is { } text
                    ? new TextPerplexitySpec { Text = text, ByteStart = parse.GetValue(evalStart), ByteEnd = parse.GetValue(evalEnd), WindowLength = parse.GetValue(evalWindow) }
                    : null,
                Device = TorchBackend.ParseDevice(parse.GetValue(device)),
                ComputeDtype = GenerateCommand.ParseDtype(parse.GetValue(computeDtype)),
                StreamBlocks = parse.GetValue(streamBlocks)!.Trim().ToLowerInvariant() switch
                {
                    "auto" => null,
                    "on" or "true" => true,
                    "off" or "false" => false,
                    var other => throw new LrkException(ErrorCodes.BadArgument, $"--stream-blocks '{other}': use auto, on or off"),
                },
                LibTorch = parse.GetValue(libTorch),
                Force = parse.GetValue(force),
            }, ModelFormats.Parse(parse.GetValue(format)), ToolProgress.Reporter, token);
            ToolProgress.Result(Summary(outputs.Compression, outputs), parse.GetValue(json), () => PrintSummary(outputs.Compression, outputs));
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    /// <summary>The machine-readable result (<c>--json</c>, and the <c>result</c> line under <c>--progress jsonl</c>).</summary>
    public static object Summary(CompressionJobResult result, CompressionOutputsResult? outputs = null) => new
    {
        output = outputs?.Out ?? result.Out,
        report = outputs?.Onnx is null ? result.ReportPath : Path.Combine(outputs.Out, CompressionJob.ReportFileName),
        formats = (outputs?.Formats ?? ModelFormats.Default).Canonical,
        onnx = outputs?.Onnx is { } onnx ? new { folder = onnx.Folder, onnx.Files, factorizedLinears = onnx.FactorizedLinears, onnx.WeightBytes, genAiModelType = onnx.GenAiModelType } : null,
        method = result.Report.Method,
        requestedRatio = result.Artifact.Section.RequestedRatio,
        achievedRatio = result.Artifact.Section.AchievedRatio,
        achievedRatioModel = result.Artifact.Section.AchievedRatioModel,
        factorDtype = result.Artifact.Section.FactorDtype.ShortName(),
        parameters = result.Artifact.Section.Parameters,
        linearBytes = result.Artifact.Section.LinearBytes,
        quantization = result.Report.Quantization is { } q ? new { q.Quantizer, q.Format, q.Bytes, q.BitsPerWeight, q.RtnFallbacks } : null,
        allocation = result.Report.Allocation is { } a ? new { a.TargetBits, a.PlannedBits, a.EstimatedObjective } : null,
        perplexityBefore = result.Evaluation?.Before.Perplexity.Perplexity,
        perplexityAfter = result.Evaluation?.After.Perplexity.Perplexity,
        evaluatedTokens = result.Evaluation?.After.Perplexity.ScoredTokens,
        calibration = result.Calibration,
        sourceDigest = result.Artifact.Manifest.Source.Digest,
        seconds = result.Artifact.Manifest.TimingsSeconds,
    };

    public static void PrintSummary(CompressionJobResult result, CompressionOutputsResult? outputs = null)
    {
        var section = result.Artifact.Section;
        var p = section.Parameters;
        Console.WriteLine($"{result.Report.Method} → {outputs?.Out ?? result.Out}");
        Console.WriteLine($"ratio (removed)   requested {section.RequestedRatio:F4}   achieved {section.AchievedRatio:F4} of the block linears, {section.AchievedRatioModel:F4} of the model");
        Console.WriteLine($"parameters        linears {p.CompressedLinearsBefore:N0} → {p.CompressedLinearsAfter:N0}   model {p.ModelBefore:N0} → {p.ModelAfter:N0}" +
            (result.Report.Ratio.DenseFallbacks > 0 && section.RequestedRatio > 0 ? $"   ({result.Report.Ratio.DenseFallbacks} linear(s) left dense)" : ""));
        if (result.Report.Quantization is { } q)
            Console.WriteLine($"quantized         {q.Format} ({q.Quantizer}), {q.Modules.Count} linears{(q.Modules.Count > 0 && q.Modules[0].Factorized ? " factorised" : "")}" +
                (q.RtnFallbacks > 0 ? $", {q.RtnFallbacks} kept RTN's result (lower objective than GPTQ's)" : ""));
        else Console.WriteLine($"factors           {section.FactorDtype.ShortName()}, {section.TruncationRanks.Count} linears factorised");
        if (section.LinearBytes is { } bytes)
            Console.WriteLine($"storage           block linears {bytes.Before:N0} → {bytes.After:N0} bytes ({bytes.BitsPerWeight:F3} bits per original weight" +
                (result.Report.Allocation is { } a ? $"; --target-bits {a.TargetBits:G}, planned {a.PlannedBits:F3})" : ")"));
        if (result.Report.Allocation is { } allocation)
        {
            var kinds = allocation.Choices.Values.Select(c => c.StartsWith("rank", StringComparison.Ordinal) ? "factors " + c.Split(' ')[^1] : c)
                .GroupBy(c => c).OrderByDescending(g => g.Count()).Select(g => $"{g.Count()} × {g.Key}");
            Console.WriteLine($"allocation        {string.Join(", ", kinds)}");
        }
        if (result.Calibration is { } c) Console.WriteLine($"calibration       {c.Samples} × {c.SeqLen} tokens from {c.Source} ({c.TokenProtocol.Name} protocol, seed {c.Seed})");
        if (result.Evaluation is { } e)
            Console.WriteLine($"perplexity        {e.Before.Perplexity.Perplexity:F4} → {e.After.Perplexity.Perplexity:F4}   ({e.After.Perplexity.ScoredTokens:N0} tokens of {e.After.Text.Location}, windows of {e.After.Perplexity.WindowLength})");
        Console.WriteLine($"time              {string.Join("   ", result.Artifact.Manifest.TimingsSeconds.Select(t => $"{t.Key} {t.Value:F1} s"))}   on {result.Report.Device}");
        if (outputs?.Onnx is { } onnx)
            Console.WriteLine($"onnx              {onnx.Folder}: {onnx.FactorizedLinears} factorised linears as two MatMuls, weights {ByteSize.Format(onnx.WeightBytes)}" +
                (onnx.GenAiModelType is { } type ? $", genai_config.json (type {type})" : ", no genai_config.json (no ONNX Runtime GenAI type for this family)"));
        Console.WriteLine($"report            {(outputs?.Onnx is null ? result.ReportPath : Path.Combine(outputs.Out, CompressionJob.ReportFileName))}");
    }
}
