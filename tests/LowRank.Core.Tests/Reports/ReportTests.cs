using System.Text.Json;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Reports;

namespace LowRank.Tests.Reports;

public sealed class ReportTests : IDisposable
{
    private readonly TempFolder temp = new("lowrank-report");

    public void Dispose() => temp.Dispose();

    private static readonly PerplexityPoint[] Points =
    [
        new("SVD", 0.0, 4.69), new("SVD", 0.2, 180.0), new("SVD", 0.4, 2400.0),
        new("SVD-LLM", 0.0, 4.69), new("SVD-LLM", 0.2, 6.1), new("SVD-LLM", 0.4, 9.8), new("SVD-LLM", 0.6, 31.0),
        new("ASVD", 0.2, 12.5), new("ASVD", 0.4, 95.0),
    ];

    private static readonly BlockProfile[] Profiles = [.. Enumerable.Range(0, 8).Select(b => new BlockProfile(
        b,
        0.4 + 0.05 * b,
        [new LinearRank("q_proj", 20 + b, 64), new LinearRank("k_proj", 10 + b, 32), new LinearRank("up_proj", 30 + 2 * b, 64), new LinearRank("down_proj", 28 + 2 * b, 64)],
        1.0 / (b + 1)))];

    [Fact]
    public void Json_report_round_trips_and_keeps_non_finite_numbers()
    {
        var report = new EvalReport
        {
            Tool = "LowRank.Build test",
            CreatedUtc = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero),
            Model = new ModelSummary { Location = "m", Architecture = "LlamaForCausalLM", Layers = 5, HiddenSize = 64, VocabSize = 512, MaxPositions = 512, LinearParameters = 1000, Device = "cpu" },
            Text = new TextSummary
            {
                Location = "t.txt", Format = "plain", Description = "t.txt: plain text", Sha256 = new string('a', 64), Bytes = 10,
                Protocol = new TokenProtocolRecord { Name = "stream", Description = "d", Bos = true, BosId = 1, JoinTokens = [13], ParagraphBreak = @"\n{2,}", Paragraphs = 2 },
                Tokens = 12,
            },
            Perplexity = new PerplexityResult
            {
                StreamTokens = 12, WindowLength = 4, Stride = 4, BatchSize = 2, Windows = 3, ScoredTokens = 9, FiniteScoredTokens = 6,
                MeanNll = 1.5, Perplexity = Math.Exp(1.5), Seconds = 0.1,
                NonFiniteWindows = [new NonFiniteWindow(2, 8, 4, 3, double.PositiveInfinity)],
            },
        };
        var path = temp.Combine("report.json");
        ReportFiles.WriteJson(path, report);
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        var root = json.RootElement;
        Assert.Equal("lowrank.eval/v1", root.GetProperty("schema").GetString());
        Assert.Equal(9, root.GetProperty("perplexity").GetProperty("scoredTokens").GetInt64());
        Assert.True(root.GetProperty("perplexity").GetProperty("flagged").GetBoolean());
        Assert.Equal("Infinity", root.GetProperty("perplexity").GetProperty("nonFiniteWindows")[0].GetProperty("nllSum").GetString());
        Assert.Equal(13, root.GetProperty("text").GetProperty("protocol").GetProperty("joinTokens")[0].GetInt32());
        Assert.False(root.GetProperty("perplexity").TryGetProperty("windowMeanNll", out _));

        var markdown = MarkdownReport.Render(report, ["windows.png"]);
        Assert.Contains("| perplexity | **4.4817** (over finite windows only, see below) |", markdown);
        Assert.Contains("| 2 | 8 | 3 | +∞ |", markdown);
        Assert.Contains("![windows](windows.png)", markdown);
    }

    [Fact]
    public void Tables_list_every_point_and_block()
    {
        var table = MarkdownReport.PerplexityTable(Points);
        Assert.Equal(Points.Length + 2, table.Trim().Split('\n').Length);
        Assert.Contains("| SVD-LLM | 40% | 9.8000 |", table);
        var blocks = MarkdownReport.BlockTable(Profiles);
        Assert.Contains("| block | kept | q_proj | k_proj | up_proj | down_proj | importance |", blocks);
        Assert.Contains("| 7 | 75.0% | 27/64 | 17/32 | 44/64 | 42/64 | 0.125 |", blocks);
    }

    [Fact]
    public void An_unwritable_report_path_is_report_unwritable()
    {
        var blocker = temp.Combine("file");
        File.WriteAllText(blocker, "x");
        var e = Assert.Throws<LrkException>(() => ReportFiles.WriteText(Path.Combine(blocker, "report.md"), "x"));
        Assert.Equal(ErrorCodes.ReportUnwritable, e.Code);
    }
}
