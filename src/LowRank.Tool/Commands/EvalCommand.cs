using System.CommandLine;
using LowRank.Bench;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Models;
using LowRank.Reports;
using LowRank.Torch;

namespace LowRank.Tool.Commands;

/// <summary><c>dotnet lowrank eval</c>: perplexity on a text and zero-shot accuracy on task files, with the protocol
/// written into the result. Exit code 3 when a perplexity window was non-finite (the result is flagged).</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Model folder (config.json + safetensors + tokenizer) or Hugging Face id in the local cache" };
        var text = new Option<string?>("--text") { Description = "Text to score: a file, a folder, FILE[start:end] (bytes), or npm:moby-dick|npm:sotu|npm:brown" };
        var textStart = new Option<long?>("--text-start") { Description = "First byte of the text to use (instead of a [start:end] suffix)" };
        var textEnd = new Option<long?>("--text-end") { Description = "Byte after the last one to use" };
        var textFormat = new Option<string>("--text-format")
        {
            Description = "auto (folder, *.jsonl or plain), plain, folder, jsonl, wikitext",
            DefaultValueFactory = _ => "auto",
        };
        textFormat.AcceptOnlyFromAmong("auto", "plain", "folder", "jsonl", "wikitext");
        var jsonField = new Option<string>("--json-field") { Description = "JSON Lines: the string field to read", DefaultValueFactory = _ => "text" };
        var wikitext = new Option<string>("--wikitext")
        {
            Description = "WikiText: papers (HF rows joined with blank lines, tokens verbatim) or detokenized (lm-evaluation-harness)",
            DefaultValueFactory = _ => "papers",
        };
        wikitext.AcceptOnlyFromAmong("papers", "detokenized");
        var protocol = CommonOptions.Protocol("Text → token protocol: stream (paragraphs joined by the newline token, BOS first) or plain (BOS + the whole text)");
        var noBos = new Option<bool>("--no-bos") { Description = "Do not put BOS first (text) or before each request (tasks)" };
        var seqLen = new Option<int?>("--seq-len") { Description = "Perplexity window length (default: the model's context, at most 2048)" };
        var stride = new Option<int?>("--stride") { Description = "Window stride (default: the window length, i.e. non-overlapping windows)" };
        var batch = CommonOptions.BatchSize<int?>("Windows or requests per forward pass (default: fit the logits in ~256 MiB)");
        var tasks = new Option<string[]>("--tasks")
        {
            Description = "Zero-shot task files (JSON Lines in ARC, PIQA, HellaSwag or WinoGrande layout; arc:FILE forces a layout)",
            AllowMultipleArgumentsPerToken = true,
        };
        var report = new Option<string?>("--report") { Description = "Folder for report.json, report.md and plots" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var libTorch = CommonOptions.LibTorch();
        var command = new Command("eval", "Measure perplexity on a text and zero-shot accuracy on task files, stating the protocol.")
        {
            model, text, textStart, textEnd, textFormat, jsonField, wikitext, protocol, noBos, seqLen, stride, batch, tasks, report, device, json, libTorch,
        };
        command.SetAction((parse, cancellation) =>
        {
            var request = new EvalRequest
            {
                Text = parse.GetValue(text),
                TextOptions = new TextSourceOptions
                {
                    Format = parse.GetValue(textFormat) switch
                    {
                        "plain" => TextFormat.Plain,
                        "folder" => TextFormat.Folder,
                        "jsonl" => TextFormat.JsonLines,
                        "wikitext" => TextFormat.WikiText,
                        _ => TextFormat.Auto,
                    },
                    JsonField = parse.GetValue(jsonField)!,
                    WikiText = parse.GetValue(wikitext) == "detokenized" ? WikiTextMode.Detokenized : WikiTextMode.Papers,
                    ByteStart = parse.GetValue(textStart),
                    ByteEnd = parse.GetValue(textEnd),
                },
                Protocol = parse.GetValue(protocol)!,
                Bos = !parse.GetValue(noBos),
                SeqLen = parse.GetValue(seqLen),
                Stride = parse.GetValue(stride),
                Batch = parse.GetValue(batch),
                Tasks = parse.GetValue(tasks) ?? [],
            };
            if (request.Text is null && request.Tasks.Count == 0)
                throw new LrkException(ErrorCodes.BadArgument, "nothing to evaluate: give --text and/or --tasks");
            var modelLocation = parse.GetValue(model)!;
            using var loaded = ModelLoader.Load(modelLocation, new ModelLoadOptions
            {
                Device = parse.GetValue(device),
                LibTorch = parse.GetValue(libTorch),
            });
            var result = EvalRunner.Run(loaded, modelLocation, request,
                (what, done, total) => ToolProgress.Progress(what, $"{done}/{total}", done - 1, total), cancellation);
            var written = parse.GetValue(report) is { } folder ? EvalReportFolder.Write(result, folder) : [];
            ToolProgress.Result(result, parse.GetValue(json), () => PrintHuman(result, written));
            return Task.FromResult(result.Perplexity is { Flagged: true } ? ExitCodes.CheckFailed : ExitCodes.Success);
        });
        return command;
    }

    private static void PrintHuman(EvalReport report, IReadOnlyList<string> written)
    {
        var m = report.Model;
        Console.WriteLine($"model       {m.Location} ({m.Architecture}, {m.Layers} blocks, context {m.MaxPositions}, {m.Device})");
        if (report.Text is { } text && report.Perplexity is { } ppl)
        {
            Console.WriteLine($"text        {text.Description}");
            Console.WriteLine($"sha256      {text.Sha256}");
            Console.WriteLine($"protocol    {text.Protocol.Description} → {text.Tokens:N0} tokens");
            Console.WriteLine($"perplexity  {ppl.Perplexity:F4}  (mean NLL {ppl.MeanNll:F6} over {ppl.ScoredTokens:N0} tokens in {ppl.Windows:N0} windows of {ppl.WindowLength}, stride {ppl.Stride}; {ppl.Seconds:F1} s)");
            if (ppl.Flagged)
                Console.WriteLine($"warning     {ppl.NonFiniteWindows.Count} window(s) gave a non-finite loss (first at token {ppl.NonFiniteWindows[0].Start:N0}); the perplexity covers {ppl.FiniteScoredTokens:N0} of {ppl.ScoredTokens:N0} tokens");
        }
        foreach (var task in report.Tasks)
        {
            var norm = task.AccNorm is { } n ? $", acc_norm {n:F4} ± {task.AccNormStderr:F4}" : "";
            Console.WriteLine($"task        {task.Task} ({task.Format}, {task.Items} items): acc {task.Acc:F4} ± {task.AccStderr:F4}{norm}");
        }
        if (written.Count > 0) Console.WriteLine($"report      {string.Join(", ", written)}");
    }
}
