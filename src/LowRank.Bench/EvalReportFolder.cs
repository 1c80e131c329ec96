using LowRank.Evaluation;
using LowRank.Reports;

namespace LowRank.Bench;

/// <summary>The folder <c>dotnet lowrank eval --report</c> writes: the JSON and Markdown reports, and the per-window
/// NLL plot (which is why it lives beside the plots, not in the engine).</summary>
public static class EvalReportFolder
{
    /// <summary>Writes report.json, report.md and, when there is a perplexity, window-nll.png into <paramref name="folder"/>.</summary>
    public static IReadOnlyList<string> Write(EvalReport report, string folder)
    {
        var written = new List<string>();
        var plots = new List<string>();
        if (report.Perplexity is { WindowMeanNll.Count: > 0 } ppl)
        {
            var plot = Path.Combine(folder, "window-nll.png");
            ReportPlots.Line(ppl.WindowMeanNll, plot, $"Mean NLL per window (PPL {ppl.Perplexity:F4})", "window", "mean NLL (nats)");
            plots.Add(plot);
        }
        var json = Path.Combine(folder, "report.json");
        ReportFiles.WriteJson(json, report);
        var markdown = Path.Combine(folder, "report.md");
        ReportFiles.WriteText(markdown, MarkdownReport.Render(report, plots));
        written.Add(json);
        written.Add(markdown);
        written.AddRange(plots);
        return written;
    }
}
