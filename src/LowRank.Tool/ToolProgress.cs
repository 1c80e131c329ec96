using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace LowRank.Tool;

/// <summary>How a command reports progress: <c>--progress auto|bar|text|none|jsonl</c>, accepted by every command.</summary>
public enum ProgressMode
{
    /// <summary><see cref="Bar"/> on an interactive terminal, <see cref="Text"/> when stderr is redirected, CI is set or TERM=dumb (the default).</summary>
    Auto,
    /// <summary>Progress lines on stderr, for logs: <c>[compress 3/32] message (eta 1m20s)</c>.</summary>
    Text,
    /// <summary>No progress output.</summary>
    None,
    /// <summary>One <see cref="ToolEvent"/> JSON object per line on stdout, for programs (the MSBuild task); stdout carries nothing else.</summary>
    Jsonl,
    /// <summary>A Spectre.Console progress display on stderr: a bar per stage with its block, percentage and ETA.</summary>
    Bar,
}

/// <summary>
/// The one place commands report progress, warnings and their result, so that every command speaks the
/// <see cref="ToolEvent"/> protocol under <c>--progress jsonl</c> and draws a progress bar on a terminal without
/// knowing about either. The engine reports through <see cref="Reporter"/> (an <see cref="IProgress{T}"/> of
/// <see cref="ProgressUpdate"/>); <see cref="CommandRunner"/> sets the mode, turns a failure into an error event,
/// and calls <see cref="Finish"/> before anything else is printed.
/// </summary>
public static class ToolProgress
{
    private static readonly object Gate = new();
    private static ProgressMode mode = ProgressMode.Text;
    private static BarDisplay? bar;
    private static readonly Dictionary<string, (Stopwatch Clock, TimeSpan LastLine)> TextStages = new(StringComparer.Ordinal);

    /// <summary>The resolved mode (never <see cref="ProgressMode.Auto"/>: setting Auto picks Bar or Text for this process).</summary>
    public static ProgressMode Mode
    {
        get => mode;
        set
        {
            Finish();
            mode = value == ProgressMode.Auto ? Resolve() : value;
        }
    }

    /// <summary>The engine's view of this class.</summary>
    public static IProgress<ProgressUpdate> Reporter { get; } = new ProgressSink();

    public static Option<ProgressMode> CreateOption() => new("--progress")
    {
        Description = "Progress output: auto (a bar on a terminal, lines otherwise; default), bar, text (lines on stderr), none, or jsonl (JSON lines on stdout, for the MSBuild task and scripts)",
        DefaultValueFactory = _ => ProgressMode.Auto,
        Recursive = true,
    };

    /// <summary>Bar on an interactive terminal; text lines when stderr is redirected, in CI (CI set and not false/0) or with TERM=dumb.</summary>
    public static ProgressMode Resolve()
    {
        var ci = Environment.GetEnvironmentVariable("CI");
        var inCi = !string.IsNullOrEmpty(ci) && ci is not ("false" or "0");
        return inCi || Console.IsErrorRedirected || Environment.GetEnvironmentVariable("TERM") == "dumb" ? ProgressMode.Text : ProgressMode.Bar;
    }

    public static void Progress(string stage, string message, int? block = null, int? blocks = null)
    {
        switch (Mode)
        {
            case ProgressMode.Jsonl:
                WriteLine(Console.Out, new ToolEvent(ToolEvent.Progress, stage, block, blocks, Message: message).ToJsonLine());
                break;
            case ProgressMode.Text:
                TextLine(stage, message, block, blocks);
                break;
            case ProgressMode.Bar:
                lock (Gate)
                {
                    bar ??= BarDisplay.TryStart();
                    if (bar is null)
                    {
                        mode = ProgressMode.Text;
                        TextLine(stage, message, block, blocks);
                    }
                    else
                    {
                        bar.Report(stage, message, block, blocks);
                    }
                }
                break;
        }
    }

    public static void Warning(string code, string message)
    {
        if (Mode == ProgressMode.Jsonl) WriteLine(Console.Out, new ToolEvent(ToolEvent.Warning, Code: code, Message: message).ToJsonLine());
        lock (Gate)
        {
            if (bar is not null) bar.Defer($"warning {code}: {message}");
            else WriteLine(Console.Error, $"warning {code}: {message}");
        }
    }

    /// <summary>Called by <see cref="CommandRunner"/> for a failed command; stderr gets the usual one line either way.</summary>
    public static void Error(string code, string message)
    {
        Finish();
        if (Mode == ProgressMode.Jsonl) WriteLine(Console.Out, new ToolEvent(ToolEvent.Error, Code: code, Message: message).ToJsonLine());
    }

    /// <summary>
    /// A command's result. Under jsonl it is the last line (<c>{"type":"result",…}</c>); otherwise it is printed as
    /// indented JSON when <paramref name="json"/> is set, and <paramref name="text"/> writes the human form.
    /// </summary>
    public static void Result<T>(T value, bool json, Action? text = null)
    {
        Finish(completed: true);
        if (Mode == ProgressMode.Jsonl)
        {
            var payload = JsonSerializer.SerializeToNode(value, Output.JsonOptions) as JsonObject ?? new JsonObject { ["value"] = JsonSerializer.SerializeToNode(value, Output.JsonOptions) };
            WriteLine(Console.Out, new ToolEvent(ToolEvent.Result) { Payload = payload }.ToJsonLine());
        }
        else if (json)
        {
            Output.WriteJson(value);
        }
        else
        {
            text?.Invoke();
        }
    }

    /// <summary>Ends a progress display (completing its bars) and prints the warnings it held back. Safe to call at any time.</summary>
    public static void Finish(bool completed = false)
    {
        BarDisplay? ending;
        lock (Gate)
        {
            ending = bar;
            bar = null;
            TextStages.Clear();
        }
        ending?.End(completed);
    }

    /// <summary>
    /// One line per update, except that a stage reporting faster than once a second prints only its first and last
    /// block (so a log shows every block of a slow compression and a few lines of a fast write).
    /// </summary>
    private static void TextLine(string stage, string message, int? block, int? blocks)
    {
        lock (Gate)
        {
            if (!TextStages.TryGetValue(stage, out var state)) state = (Stopwatch.StartNew(), TimeSpan.FromDays(-1));
            var now = state.Clock.Elapsed;
            var edge = block is null || block == 0 || (blocks is { } total && block >= total - 1);
            if (!edge && now - state.LastLine < TimeSpan.FromSeconds(1)) return;
            TextStages[stage] = (state.Clock, now);
            var position = block is { } b && blocks is { } n ? $" {b + 1}/{n}" : "";
            var eta = block is { } done && done > 0 && blocks is { } count && done < count
                ? $" (eta {FormatDuration(TimeSpan.FromTicks(now.Ticks / done * (count - done)))})"
                : "";
            WriteLine(Console.Error, $"[{stage}{position}] {message}{eta}");
        }
    }

    private static string FormatDuration(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:D2}s" : $"{Math.Max(1, (int)Math.Ceiling(t.TotalSeconds))}s";

    private static void WriteLine(TextWriter writer, string line)
    {
        lock (Gate)
        {
            writer.WriteLine(line);
            writer.Flush();
        }
    }

    private sealed class ProgressSink : IProgress<ProgressUpdate>
    {
        public void Report(ProgressUpdate value) => Progress(value.Stage, value.Message, value.Block, value.Blocks);
    }

    /// <summary>
    /// A Spectre.Console progress display on stderr, driven by events: Spectre renders from the thread that calls
    /// <c>Start</c>, so that thread is a background task that waits until the display is finished, while reports
    /// update its tasks (which Spectre allows from any thread). One task per stage; a new stage completes the earlier ones.
    /// </summary>
    private sealed class BarDisplay
    {
        private readonly Task render;
        private readonly ProgressContext context;
        private readonly ManualResetEventSlim finished;
        private readonly Dictionary<string, ProgressTask> stages = new(StringComparer.Ordinal);
        private readonly List<string> deferred = [];

        private BarDisplay(Task render, ProgressContext context, ManualResetEventSlim finished)
        {
            this.render = render;
            this.context = context;
            this.finished = finished;
        }

        public static BarDisplay? TryStart()
        {
            try
            {
                var console = AnsiConsole.Create(new AnsiConsoleSettings
                {
                    Out = new AnsiConsoleOutput(Console.Error),
                    Ansi = AnsiSupport.Detect,
                    ColorSystem = ColorSystemSupport.Detect,
                    Interactive = InteractionSupport.Detect,
                });
                var ready = new TaskCompletionSource<ProgressContext>(TaskCreationOptions.RunContinuationsAsynchronously);
                var finished = new ManualResetEventSlim();
                var render = Task.Run(() =>
                {
                    try
                    {
                        console.Progress()
                            .AutoClear(false)
                            .HideCompleted(false)
                            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                                new RemainingTimeColumn(), new SpinnerColumn())
                            .Start(ctx =>
                            {
                                ready.TrySetResult(ctx);
                                finished.Wait();
                            });
                    }
                    catch (Exception e)
                    {
                        ready.TrySetException(e);
                    }
                });
                if (!ready.Task.Wait(TimeSpan.FromSeconds(5)))
                {
                    finished.Set();
                    return null;
                }
                return new BarDisplay(render, ready.Task.Result, finished);
            }
            catch (Exception e) when (e is AggregateException or InvalidOperationException or IOException)
            {
                return null;
            }
        }

        public void Report(string stage, string message, int? block, int? blocks)
        {
            if (!stages.TryGetValue(stage, out var task) || task.IsFinished)
            {
                foreach (var earlier in stages.Values)
                    if (!earlier.IsFinished) CompleteTask(earlier);
                task = context.AddTask(Markup.Escape(stage), autoStart: true, maxValue: blocks ?? 1);
                stages[stage] = task;
            }
            var text = message.Length > 48 ? "…" + message[^47..] : message;
            var position = block is { } b && blocks is { } n ? $" {b + 1}/{n}" : "";
            task.Description = Markup.Escape($"{stage}{position} {text}");
            if (blocks is { } total)
            {
                task.IsIndeterminate = false;
                task.MaxValue = Math.Max(1, total);
                task.Value = Math.Clamp(block ?? 0, 0, total);
            }
            else
            {
                task.IsIndeterminate = true;
            }
            context.Refresh();
        }

        public void Defer(string line) => deferred.Add(line);

        private static void CompleteTask(ProgressTask task)
        {
            task.IsIndeterminate = false;
            task.Value = task.MaxValue;
            task.StopTask();
        }

        /// <summary>Stops the display; bars are filled only when the command <paramref name="completed"/> (a failed or
        /// cancelled run leaves them where they stopped).</summary>
        public void End(bool completed)
        {
            foreach (var task in stages.Values)
            {
                if (task.IsFinished) continue;
                if (completed) CompleteTask(task);
                else task.StopTask();
            }
            finished.Set();
            try
            {
                render.Wait(TimeSpan.FromSeconds(5));
            }
            catch (AggregateException)
            {
                // A display that failed to draw has nothing left to clean up.
            }
            finished.Dispose();
            foreach (var line in deferred) WriteLine(Console.Error, line);
        }
    }
}
