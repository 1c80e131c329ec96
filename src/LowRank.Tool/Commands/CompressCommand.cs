using System.CommandLine;
using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Jobs;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank compress</c>: a thin shell over <see cref="CompressionJob"/>.</summary>
public static class CompressCommand
{
    public static Command Create()
    {
        var options = new CompressOptions();
        var command = new Command("compress", "Compress a model's block linears with a low-rank method and write the compressed artifact.");
        options.AddTo(command);
        command.Validators.Add(result =>
        {
            // --ratio is required by the low-rank methods; rtn/gptq take --bits instead (a ratio given to them, such as
            // MSBuild's default Ratio metadata, is ignored).
            CompressionMethod method;
            double? ratio, targetBits;
            int? bits;
            if (result.GetResult(options.Method) is null) return; // --method is required: the parser reports it
            try
            {
                method = result.GetValue(options.Method);
                ratio = result.GetValue(options.Ratio);
                targetBits = result.GetValue(options.TargetBits);
                bits = result.GetValue(options.Bits);
            }
            catch (InvalidOperationException)
            {
                return; // a bad or repeated --method, --ratio, --target-bits or --bits: the parser reports it
            }
            if (method.IsQuantizationOnly())
            {
                if (bits is null) result.AddError($"{ErrorCodes.BadMethodOption}: {method.Name()} needs --bits 8, 4 or 3");
            }
            else if (targetBits is not null)
            {
                if (ratio is not null) result.AddError($"{ErrorCodes.BadRatio}: --target-bits sets the size; drop --ratio");
            }
            else if (ratio is null) result.AddError($"{ErrorCodes.BadRatio}: {method.Name()} needs --ratio (the fraction of the block linears' parameters to remove) or --target-bits");
        });
        command.SetAction((parse, token) =>
        {
            var outputs = CompressionOutputs.Run(options.Job(parse), parse.GetValue(options.Format)!, ToolProgress.Reporter, token);
            ToolProgress.Result(Summary(outputs.Compression, outputs), parse.GetValue(options.Json), () => PrintSummary(outputs.Compression, outputs));
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
