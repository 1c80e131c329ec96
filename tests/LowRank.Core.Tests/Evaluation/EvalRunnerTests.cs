using System.Text.Json;
using LowRank.Evaluation;
using LowRank.Models;
using LowRank.Reports;
using LowRank.Tests.TestSupport;
using LowRank.Torch;

namespace LowRank.Tests.Evaluation;

/// <summary>The whole eval pipeline (text → protocol → perplexity, task files → zero-shot, the JSON report) on the
/// bigram model with the byte tokenizer.</summary>
public sealed class EvalRunnerTests : IDisposable
{
    private readonly TempFolder temp = new("lowrank-eval");

    public EvalRunnerTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    public void Dispose() => temp.Dispose();

    private static LoadedModel Bigram(double[,] table)
    {
        var model = new BigramModel(table, maxPositions: 256);
        return new LoadedModel(model, new ByteTokenizer(), "bigram", model.Config);
    }

    private string WriteText()
    {
        var path = temp.Combine("story.txt");
        File.WriteAllText(path, string.Join("\n\n", Enumerable.Range(0, 40).Select(i => $"Paragraph {i}: the cat sat on the mat and looked at the dog.")) + "\n");
        return path;
    }

    [Fact]
    public void Text_and_tasks_make_one_report_with_the_protocol_in_it()
    {
        using var loaded = Bigram(BigramModel.RandomTable(259, seed: 8));
        var request = new EvalRequest
        {
            Text = WriteText() + "[0:1500]",
            SeqLen = 64,
            Tasks = [EvalTestData.TaskFixture("arc_sample.jsonl"), "winogrande:" + EvalTestData.TaskFixture("winogrande_sample.jsonl")],
        };
        var report = EvalRunner.Run(loaded, "bigram", request);
        Assert.NotNull(report.Perplexity);
        // BOS + the dummy space + one token per byte of each paragraph + one join token between paragraphs
        var paragraphs = File.ReadAllText(request.Text[..^"[0:1500]".Length])[..1500].Split("\n\n").Where(p => p.Length > 0).ToArray();
        Assert.Equal(2 + paragraphs.Sum(p => p.Length) + paragraphs.Length - 1, report.Text!.Tokens);
        Assert.Equal("stream", report.Text.Protocol.Name);
        Assert.Equal(report.Text.Tokens - (long)Math.Ceiling(report.Text.Tokens / 64.0), report.Perplexity!.ScoredTokens);
        Assert.Equal(2, report.Tasks.Count);
        Assert.Null(report.Tasks[1].AccNorm);

        // The report as `eval --report` writes it (the folder with its plot: EvalReportFolder, in LowRank.Bench).
        var path = temp.Combine("report.json");
        ReportFiles.WriteJson(path, report);
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        Assert.Equal(report.Perplexity.ScoredTokens, json.RootElement.GetProperty("perplexity").GetProperty("scoredTokens").GetInt64());
        Assert.Equal("arc", json.RootElement.GetProperty("tasks")[0].GetProperty("format").GetString());
    }

    [Fact]
    public void Nothing_to_evaluate_and_a_window_longer_than_the_context_are_bad_arguments()
    {
        using var loaded = Bigram(BigramModel.RandomTable(259, seed: 8));
        Assert.Equal(ErrorCodes.BadArgument, Assert.Throws<LrkException>(() => EvalRunner.Run(loaded, "bigram", new EvalRequest())).Code);
        var e = Assert.Throws<LrkException>(() => EvalRunner.Run(loaded, "bigram", new EvalRequest { Text = WriteText(), SeqLen = 1024 }));
        Assert.Equal(ErrorCodes.BadArgument, e.Code);
        Assert.Contains("256 positions", e.Message);
    }

    [Fact]
    public void A_bad_task_file_fails_before_any_forward_pass()
    {
        using var loaded = Bigram(BigramModel.RandomTable(259, seed: 8));
        var bad = temp.Combine("bad.jsonl");
        File.WriteAllText(bad, "{\"goal\": \"x\"}\n");
        var e = Assert.Throws<LrkException>(() => EvalRunner.Run(loaded, "bigram", new EvalRequest { Text = WriteText(), Tasks = [bad] }));
        Assert.Equal(ErrorCodes.BadTaskFile, e.Code);
        Assert.Equal(0, ((BigramModel)loaded.Model).ForwardCalls);
    }

    [Fact]
    public void Non_finite_windows_reach_the_report()
    {
        var table = BigramModel.RandomTable(259, seed: 8);
        // "t" → "h" becomes impossible (and row "t" is renormalised): every window holding "th" is infinite
        table['t' + 3, 'h' + 3] = 0;
        var rowSum = Enumerable.Range(0, 259).Sum(j => table['t' + 3, j]);
        for (var j = 0; j < 259; j++) table['t' + 3, j] /= rowSum;
        using var loaded = Bigram(table);
        var report = EvalRunner.Run(loaded, "bigram", new EvalRequest { Text = WriteText(), SeqLen = 64 });
        Assert.True(report.Perplexity!.Flagged);
        Assert.NotEmpty(report.Perplexity.NonFiniteWindows);
        Assert.True(double.IsFinite(report.Perplexity.Perplexity) || report.Perplexity.FiniteScoredTokens == 0);
        var markdown = LowRank.Reports.MarkdownReport.Render(report);
        Assert.Contains("**Warning:**", markdown);
    }
}
