using System.Buffers.Binary;
using System.Text.Json;
using LowRank.Evaluation;
using LowRank.Reports;

namespace LowRank.Bench.Tests;

/// <summary>The report plots (ScottPlot, headless PNG) and the eval report folder that carries one.</summary>
public sealed class ReportPlotsTests : IDisposable
{
    private readonly TempFolder _temp = new("lowrank-plots");

    public void Dispose() => _temp.Dispose();

    // Perplexity growing exponentially with the ratio, faster for the plainer methods (a log axis from 4.69 to ~2400).
    private static readonly PerplexityPoint[] Points =
    [
        .. new[] { ("SVD", 15.6), ("ASVD", 7.5), ("SVD-LLM", 3.1) }.SelectMany(m =>
            Enumerable.Range(0, 4).Select(i => new PerplexityPoint(m.Item1, 0.2 * i, 4.69 * Math.Exp(m.Item2 * 0.2 * i)))),
    ];

    private static readonly BlockProfile[] Profiles = [.. Enumerable.Range(0, 6).Select(b => new BlockProfile(
        b,
        0.5 + 0.04 * b,
        [new LinearRank("q_proj", 16 + b, 48), new LinearRank("o_proj", 12 + b, 48), new LinearRank("down_proj", 20 + 3 * b, 96)],
        0.9 / (b + 1)))];

    /// <summary>Width and height from a PNG's IHDR chunk, after checking the signature.</summary>
    private static (int Width, int Height) PngSize(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        Assert.Equal("IHDR"u8.ToArray(), bytes[12..16]);
        Assert.True(bytes.Length > 10_000, $"{path} is only {bytes.Length} bytes: nothing was drawn");
        return (BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
    }

    [Fact]
    public void Plots_render_headless_to_png()
    {
        var files = new[] { "ppl.png", "retention.png", "ranks.png", "importance.png", "windows.png" }.Select(f => Path.Combine(_temp.Path, f)).ToArray();
        ReportPlots.PerplexityVsRatio(Points, files[0]);
        ReportPlots.BlockRetention(Profiles, files[1]);
        ReportPlots.BlockRanks(Profiles, files[2]);
        ReportPlots.BlockImportance(Profiles, files[3]);
        ReportPlots.Line([.. Enumerable.Range(0, 300).Select(i => 1.3 + Math.Sin(i / 10.0) * 0.2)], files[4], "NLL per window", "window", "mean NLL");
        foreach (var file in files) Assert.Equal((ReportPlots.Width, ReportPlots.Height), PngSize(file));
        Assert.Empty(Directory.EnumerateFiles(_temp.Path, "*.tmp"));
        if (Environment.GetEnvironmentVariable("LOWRANK_TEST_PLOTS") is { Length: > 0 } keep)
            foreach (var file in files) File.Copy(file, Path.Combine(keep, Path.GetFileName(file)), overwrite: true);
    }

    [Theory]
    [InlineData(4.69, 2400.0, new[] { 5.0, 10, 20, 50, 100, 200, 500, 1000, 2000 })]
    [InlineData(1.0, 100_000.0, new[] { 1.0, 10, 100, 1000, 10_000, 100_000 })]
    [InlineData(3.74, 4.69, new[] { 4.0 })]
    [InlineData(3.9, 9.5, new[] { 4.0, 5, 6, 7, 8, 9 })]
    public void Log_ticks_are_round_numbers_inside_the_range(double low, double high, double[] expected)
    {
        var ticks = ReportPlots.LogTicks(low, high);
        if (expected.Length == 1)
        {
            // too narrow for four round ticks: the round one plus both ends
            Assert.Equal([low, expected[0], high], ticks);
        }
        else
        {
            Assert.Equal(expected, ticks);
        }
    }

    [Fact]
    public void Plots_refuse_empty_data()
    {
        Assert.Equal(ErrorCodes.BadArgument, Assert.Throws<LrkException>(() => ReportPlots.PerplexityVsRatio([new("SVD", 0.2, double.NaN)], Path.Combine(_temp.Path, "x.png"))).Code);
        Assert.Equal(ErrorCodes.BadArgument, Assert.Throws<LrkException>(() => ReportPlots.BlockImportance([new BlockProfile(0, 1, [], null)], Path.Combine(_temp.Path, "y.png"))).Code);
        Assert.False(File.Exists(Path.Combine(_temp.Path, "x.png")));
    }

    [Fact]
    public void The_eval_report_folder_holds_the_json_the_markdown_and_the_window_plot()
    {
        var report = new EvalReport
        {
            Tool = "LowRank.Build test",
            CreatedUtc = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero),
            Model = new ModelSummary { Location = "m", Architecture = "LlamaForCausalLM", Layers = 2, HiddenSize = 16, VocabSize = 259, MaxPositions = 64, LinearParameters = 100, Device = "cpu" },
            Perplexity = new PerplexityResult
            {
                StreamTokens = 400, WindowLength = 64, Stride = 64, BatchSize = 4, Windows = 6, ScoredTokens = 378, FiniteScoredTokens = 378,
                MeanNll = 2.0, Perplexity = Math.Exp(2.0), Seconds = 0.1,
                NonFiniteWindows = [], WindowMeanNll = [2.1, 1.9, 2.0, 2.2, 1.8, 2.0],
            },
        };
        var files = EvalReportFolder.Write(report, Path.Combine(_temp.Path, "report"));
        Assert.Equal(["report.json", "report.md", "window-nll.png"], files.Select(Path.GetFileName));
        using var json = JsonDocument.Parse(File.ReadAllText(files[0]));
        Assert.Equal(378, json.RootElement.GetProperty("perplexity").GetProperty("scoredTokens").GetInt64());
        Assert.Contains("![window-nll](window-nll.png)", File.ReadAllText(files[1]));
        Assert.Equal((ReportPlots.Width, ReportPlots.Height), PngSize(files[2]));

        // No perplexity, no plot.
        var tasksOnly = EvalReportFolder.Write(report with { Perplexity = null }, Path.Combine(_temp.Path, "tasks"));
        Assert.Equal(["report.json", "report.md"], tasksOnly.Select(Path.GetFileName));
    }
}
