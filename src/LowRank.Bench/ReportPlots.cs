using LowRank.Reports;
using ScottPlot;

namespace LowRank.Bench;

/// <summary>
/// PNG plots for reports, drawn with ScottPlot (SkiaSharp, headless). Each takes plain records, so the compressor and
/// the evaluator feed them the same way. Files are written atomically (<see cref="ReportFiles"/>).
/// </summary>
public static class ReportPlots
{
    public const int Width = 900;
    public const int Height = 540;

    /// <summary>Perplexity (log scale) against compression ratio, one line per method, points sorted by ratio.</summary>
    public static void PerplexityVsRatio(IEnumerable<PerplexityPoint> points, string path, string? title = null)
    {
        var byMethod = points.Where(p => double.IsFinite(p.Perplexity) && p.Perplexity > 0)
            .GroupBy(p => p.Method).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        if (byMethod.Count == 0) throw new LrkException(ErrorCodes.BadArgument, "no finite perplexity points to plot");
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var index = 0;
        foreach (var method in byMethod)
        {
            var ordered = method.OrderBy(p => p.Ratio).ToArray();
            Series(plot, ordered.Select(p => p.Ratio * 100), ordered.Select(p => Math.Log10(p.Perplexity)), method.Key, palette.GetColor(index++));
        }
        var all = byMethod.SelectMany(g => g).Select(p => p.Perplexity).ToArray();
        PerplexityAxis(plot, all.Min(), all.Max());
        plot.Grid.MajorLineColor = Colors.Black.WithOpacity(0.15);
        plot.ShowLegend(Alignment.UpperLeft);
        Save(plot, path, "compression ratio (% of parameters removed)", "perplexity (log scale)", title ?? "Perplexity vs compression ratio");
    }

    /// <summary>Perplexity (log scale) against the bytes of the block linears (log scale), one line per series, points
    /// sorted by size (<c>bench quant</c>).</summary>
    public static void PerplexityVsBytes(IEnumerable<(string Series, double Bytes, double Perplexity)> points, string path, string? title = null)
    {
        var bySeries = points.Where(p => double.IsFinite(p.Perplexity) && p.Perplexity > 0 && p.Bytes > 0)
            .GroupBy(p => p.Series).ToList();
        if (bySeries.Count == 0) throw new LrkException(ErrorCodes.BadArgument, "no finite perplexity points to plot");
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Tsitsulin();
        var markers = new[] { MarkerShape.FilledCircle, MarkerShape.FilledSquare, MarkerShape.FilledTriangleUp, MarkerShape.FilledDiamond, MarkerShape.OpenCircle };
        var index = 0;
        foreach (var series in bySeries)
        {
            var ordered = series.OrderBy(p => p.Bytes).ToArray();
            var scatter = Series(plot, ordered.Select(p => Math.Log10(p.Bytes)), ordered.Select(p => Math.Log10(p.Perplexity)), series.Key, palette.GetColor(index));
            scatter.MarkerShape = markers[index % markers.Length];
            index++;
        }
        var all = bySeries.SelectMany(g => g).ToArray();
        PerplexityAxis(plot, all.Min(p => p.Perplexity), all.Max(p => p.Perplexity));
        LogAxis(plot.Axes.Bottom, (min, max) => plot.Axes.SetLimitsX(min, max), all.Min(p => p.Bytes), all.Max(p => p.Bytes), FormatBytes, 0.04);
        plot.Grid.MajorLineColor = Colors.Black.WithOpacity(0.15);
        plot.ShowLegend(Alignment.UpperRight);
        Save(plot, path, "bytes of the block linears (log scale)", "perplexity (log scale)", title ?? "Perplexity vs size");
    }

    /// <summary>One line with markers (width 2, marker size 8) in the legend as <paramref name="label"/>.</summary>
    private static ScottPlot.Plottables.Scatter Series(Plot plot, IEnumerable<double> xs, IEnumerable<double> ys, string label, Color color)
    {
        var scatter = plot.Add.Scatter(xs.ToArray(), ys.ToArray());
        scatter.LegendText = label;
        scatter.Color = color;
        scatter.LineWidth = 2;
        scatter.MarkerSize = 8;
        return scatter;
    }

    /// <summary>The left axis as log10 perplexity over [low, high] (<see cref="LogAxis"/>, 6% padding).</summary>
    private static void PerplexityAxis(Plot plot, double low, double high) =>
        LogAxis(plot.Axes.Left, (min, max) => plot.Axes.SetLimitsY(min, max), low, high, FormatPerplexity, 0.06);

    /// <summary>An axis whose coordinates are log10 of the values in [low, high]: <see cref="LogTicks"/> labelled with
    /// <paramref name="label"/>, limits padded by <paramref name="padFraction"/> of the span (at least 0.02 decades).</summary>
    private static void LogAxis(IAxis axis, Action<double, double> setLimits, double low, double high, Func<double, string> label, double padFraction)
    {
        var ticks = LogTicks(low, high);
        axis.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.Select(Math.Log10).ToArray(), ticks.Select(label).ToArray());
        var pad = Math.Max(0.02, (Math.Log10(high) - Math.Log10(low)) * padFraction);
        setLimits(Math.Log10(low) - pad, Math.Log10(high) + pad);
    }

    /// <summary>Decimal units, so the log ticks (1, 2, 5 × 10^k) read as round numbers.</summary>
    private static string FormatBytes(double bytes) => bytes switch
    {
        >= 1e9 => $"{bytes / 1e9:0.##} GB",
        >= 1e6 => $"{bytes / 1e6:0.##} MB",
        >= 1e3 => $"{bytes / 1e3:0.##} kB",
        _ => $"{bytes:0} B",
    };

    /// <summary>Bars of the fraction of parameters each block kept.</summary>
    public static void BlockRetention(IEnumerable<BlockProfile> profiles, string path, string? title = null)
    {
        var blocks = profiles.OrderBy(p => p.Block).ToArray();
        if (blocks.Length == 0) throw new LrkException(ErrorCodes.BadArgument, "no block profiles to plot");
        var plot = new Plot();
        var bars = plot.Add.Bars(blocks.Select(b => (double)b.Block).ToArray(), blocks.Select(b => b.Retention * 100).ToArray());
        bars.Color = new ScottPlot.Palettes.Category10().GetColor(0);
        plot.Axes.Margins(bottom: 0);
        plot.Axes.SetLimitsY(0, Math.Max(100, blocks.Max(b => b.Retention * 100)) * 1.05);
        BlockTicks(plot, blocks.Select(b => b.Block));
        Save(plot, path, "block", "parameters kept (%)", title ?? "Per-block retention");
    }

    /// <summary>Grouped bars: for each block, the kept rank of each linear as a percentage of its full rank.</summary>
    public static void BlockRanks(IEnumerable<BlockProfile> profiles, string path, string? title = null)
    {
        var blocks = profiles.OrderBy(p => p.Block).ToArray();
        if (blocks.Length == 0) throw new LrkException(ErrorCodes.BadArgument, "no block profiles to plot");
        var kinds = blocks.SelectMany(b => b.Ranks.Select(r => r.Kind)).Distinct().ToArray();
        var palette = new ScottPlot.Palettes.Category10();
        var plot = new Plot();
        var groupWidth = 0.8;
        var barWidth = groupWidth / Math.Max(1, kinds.Length);
        var bars = new List<Bar>();
        foreach (var block in blocks)
        {
            for (var k = 0; k < kinds.Length; k++)
            {
                var rank = block.Ranks.FirstOrDefault(r => r.Kind == kinds[k]);
                if (rank is null) continue;
                bars.Add(new Bar
                {
                    Position = block.Block - groupWidth / 2 + barWidth * (k + 0.5),
                    Value = rank.Fraction * 100,
                    Size = barWidth * 0.95,
                    FillColor = palette.GetColor(k),
                    LineWidth = 0,
                });
            }
        }
        plot.Add.Bars(bars);
        for (var k = 0; k < kinds.Length; k++)
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = kinds[k], FillColor = palette.GetColor(k) });
        plot.Axes.Margins(bottom: 0);
        plot.Axes.SetLimitsY(0, 110);
        BlockTicks(plot, blocks.Select(b => b.Block));
        plot.ShowLegend(Alignment.UpperRight);
        Save(plot, path, "block", "rank kept (% of full rank)", title ?? "Per-block ranks by linear");
    }

    /// <summary>The importance score of each block, as a line.</summary>
    public static void BlockImportance(IEnumerable<BlockProfile> profiles, string path, string? title = null)
    {
        var blocks = profiles.Where(p => p.Importance is { } v && double.IsFinite(v)).OrderBy(p => p.Block).ToArray();
        if (blocks.Length == 0) throw new LrkException(ErrorCodes.BadArgument, "no block importance values to plot");
        var plot = new Plot();
        var line = plot.Add.Scatter(blocks.Select(b => (double)b.Block).ToArray(), blocks.Select(b => b.Importance!.Value).ToArray());
        line.LineWidth = 2;
        line.MarkerSize = 7;
        BlockTicks(plot, blocks.Select(b => b.Block));
        Save(plot, path, "block", "importance", title ?? "Per-block importance");
    }

    /// <summary>A plain line plot (e.g. the mean NLL of each perplexity window along the text).</summary>
    public static void Line(IReadOnlyList<double> ys, string path, string title, string xLabel, string yLabel)
    {
        if (ys.Count == 0) throw new LrkException(ErrorCodes.BadArgument, "nothing to plot");
        var plot = new Plot();
        var xs = Enumerable.Range(0, ys.Count).Select(i => (double)i).ToArray();
        var line = plot.Add.Scatter(xs, ys.Select(y => double.IsFinite(y) ? y : double.NaN).ToArray());
        line.LineWidth = 1.5f;
        line.MarkerSize = ys.Count > 100 ? 0 : 5;
        Save(plot, path, xLabel, yLabel, title);
    }

    private static void BlockTicks(Plot plot, IEnumerable<int> blocks)
    {
        var list = blocks.ToArray();
        var step = Math.Max(1, (int)Math.Ceiling(list.Length / 40.0));
        var shown = list.Where((_, i) => i % step == 0).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            shown.Select(b => (double)b).ToArray(), shown.Select(b => b.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());
    }

    /// <summary>Tick values for a log axis over [low, high]: 1-2-5 per decade, or finer steps until there are at least four.</summary>
    public static double[] LogTicks(double low, double high)
    {
        double[][] steps = [[1], [1, 2, 5], [1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9]];
        var candidates = Array.Empty<double>();
        foreach (var mantissas in steps)
        {
            candidates = [.. Enumerable.Range((int)Math.Floor(Math.Log10(low)), (int)Math.Floor(Math.Log10(high)) - (int)Math.Floor(Math.Log10(low)) + 1)
                .SelectMany(e => mantissas.Select(m => m * Math.Pow(10, e)))
                .Where(v => v >= low * 0.999 && v <= high * 1.001)];
            if (candidates.Length >= 4) return candidates;
        }
        return candidates.Length > 0 ? [.. candidates.Append(low).Append(high).Distinct().Order()] : [low, high];
    }

    private static string FormatPerplexity(double value) =>
        value >= 100 ? value.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)
        : value >= 10 ? value.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture)
        : value.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Labels the axes, titles the plot and writes it as a PNG.</summary>
    private static void Save(Plot plot, string path, string xLabel, string yLabel, string title)
    {
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.Title(title);
        ReportFiles.WriteAtomically(path, temp => plot.SavePng(temp, Width, Height));
    }
}
