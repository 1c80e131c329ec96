using System.Globalization;
using System.Text;
using LowRank.Evaluation;

namespace LowRank.Reports;

/// <summary>The human-readable side of a report: the same numbers as the JSON, with the protocol spelled out.</summary>
public static class MarkdownReport
{
    public static string Render(EvalReport report, IReadOnlyList<string>? plots = null)
    {
        var md = new StringBuilder();
        var model = report.Model;
        md.AppendLine(CultureInfo.InvariantCulture, $"# Evaluation of {model.Location}");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"{report.Tool}, {report.CreatedUtc:yyyy-MM-dd HH:mm} UTC, device {model.Device}.");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"Model: {model.Architecture}, {model.Layers} blocks, hidden {model.HiddenSize}, vocabulary {model.VocabSize}, context {model.MaxPositions}, " +
            $"{model.LinearParameters:N0} block-linear parameters.");
        if (report.Text is { } text && report.Perplexity is { } ppl)
        {
            md.AppendLine();
            md.AppendLine("## Perplexity");
            md.AppendLine();
            md.AppendLine("| | |");
            md.AppendLine("|---|---|");
            md.AppendLine(CultureInfo.InvariantCulture, $"| perplexity | **{ppl.Perplexity:F4}**{(ppl.Flagged ? " (over finite windows only, see below)" : "")} |");
            md.AppendLine(CultureInfo.InvariantCulture, $"| mean NLL | {ppl.MeanNll:F6} nats |");
            md.AppendLine(CultureInfo.InvariantCulture, $"| scored tokens | {ppl.ScoredTokens:N0} in {ppl.Windows:N0} windows |");
            md.AppendLine(CultureInfo.InvariantCulture, $"| windows | length {ppl.WindowLength}, stride {ppl.Stride}, batch {ppl.BatchSize} |");
            md.AppendLine(CultureInfo.InvariantCulture, $"| non-finite windows | {ppl.NonFiniteWindows.Count} |");
            md.AppendLine(CultureInfo.InvariantCulture, $"| time | {ppl.Seconds:F1} s ({ppl.TokensPerSecond:N0} tokens/s) |");
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"Text: {Escape(text.Description)}, SHA-256 `{text.Sha256}`.");
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"Protocol: {Escape(text.Protocol.Description)} → {text.Tokens:N0} tokens.");
            if (ppl.Flagged)
            {
                md.AppendLine();
                md.AppendLine(CultureInfo.InvariantCulture,
                    $"**Warning:** {ppl.NonFiniteWindows.Count} window(s) gave a non-finite loss; the perplexity above covers {ppl.FiniteScoredTokens:N0} of {ppl.ScoredTokens:N0} scored tokens.");
                md.AppendLine();
                md.AppendLine("| window | start token | scored tokens | NLL sum |");
                md.AppendLine("|---:|---:|---:|---:|");
                foreach (var w in ppl.NonFiniteWindows)
                    md.AppendLine(CultureInfo.InvariantCulture, $"| {w.Index} | {w.Start:N0} | {w.ScoredTokens} | {FormatNumber(w.NllSum)} |");
            }
        }
        if (report.Tasks.Count > 0)
        {
            md.AppendLine();
            md.AppendLine("## Zero-shot tasks");
            md.AppendLine();
            md.AppendLine("| task | layout | items | acc | acc_norm | BOS |");
            md.AppendLine("|---|---|---:|---:|---:|---|");
            foreach (var task in report.Tasks)
            {
                var norm = task.AccNorm is { } n ? $"{n:F4} ± {task.AccNormStderr:F4}" : "—";
                md.AppendLine(CultureInfo.InvariantCulture, $"| {Escape(task.Task)} | {task.Format} | {task.Items} | {task.Acc:F4} ± {task.AccStderr:F4} | {norm} | {(task.Bos ? "yes" : "no")} |");
            }
            md.AppendLine();
            md.AppendLine("Scored as lm-evaluation-harness does: sum of the continuation's token log-probabilities; acc_norm divides by the choice's character count; ties go to the first choice.");
        }
        if (plots is { Count: > 0 })
        {
            md.AppendLine();
            md.AppendLine("## Plots");
            md.AppendLine();
            foreach (var plot in plots) md.AppendLine(CultureInfo.InvariantCulture, $"![{Path.GetFileNameWithoutExtension(plot)}]({Path.GetFileName(plot)})");
        }
        return md.ToString();
    }

    /// <summary>A Markdown table of perplexity by method and ratio (the compressor's sweep summary).</summary>
    public static string PerplexityTable(IEnumerable<PerplexityPoint> points)
    {
        var md = new StringBuilder();
        md.AppendLine("| method | ratio | perplexity |");
        md.AppendLine("|---|---:|---:|");
        foreach (var p in points.OrderBy(p => p.Method, StringComparer.Ordinal).ThenBy(p => p.Ratio))
            md.AppendLine(CultureInfo.InvariantCulture, $"| {Escape(p.Method)} | {Percent(p.Ratio, 0)} | {p.Perplexity:F4} |");
        return md.ToString();
    }

    /// <summary>A Markdown table of per-block retention, ranks and importance.</summary>
    public static string BlockTable(IEnumerable<BlockProfile> profiles)
    {
        var blocks = profiles.OrderBy(b => b.Block).ToArray();
        var kinds = blocks.SelectMany(b => b.Ranks.Select(r => r.Kind)).Distinct().ToArray();
        var md = new StringBuilder();
        md.AppendLine("| block | kept | " + string.Join(" | ", kinds) + " | importance |");
        md.AppendLine("|---:|---:|" + string.Concat(kinds.Select(_ => "---:|")) + "---:|");
        foreach (var b in blocks)
        {
            var ranks = kinds.Select(k => b.Ranks.FirstOrDefault(r => r.Kind == k) is { } r ? $"{r.Rank}/{r.FullRank}" : "—");
            var importance = b.Importance is { } v ? v.ToString("G4", CultureInfo.InvariantCulture) : "—";
            md.AppendLine(CultureInfo.InvariantCulture, $"| {b.Block} | {Percent(b.Retention, 1)} | {string.Join(" | ", ranks)} | {importance} |");
        }
        return md.ToString();
    }

    private static string Percent(double fraction, int decimals) =>
        (fraction * 100).ToString("F" + decimals, CultureInfo.InvariantCulture) + "%";

    private static string FormatNumber(double value) =>
        double.IsNaN(value) ? "NaN" : double.IsPositiveInfinity(value) ? "+∞" : double.IsNegativeInfinity(value) ? "−∞" : value.ToString("G6", CultureInfo.InvariantCulture);

    private static string Escape(string text) => text.Replace("|", "\\|").Replace("\n", " ");
}
