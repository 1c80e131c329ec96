using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank.Tool;

/// <summary>How a command reports progress: <c>--progress none|text|jsonl</c>, accepted by every command.</summary>
public enum ProgressMode
{
    /// <summary>Progress lines on stderr, for people (the default).</summary>
    Text,
    /// <summary>No progress output.</summary>
    None,
    /// <summary>One <see cref="ToolEvent"/> JSON object per line on stdout, for programs (the MSBuild task); stdout carries nothing else.</summary>
    Jsonl,
}

/// <summary>
/// The one place commands report progress, warnings and their result, so that every command speaks the
/// <see cref="ToolEvent"/> protocol under <c>--progress jsonl</c> without knowing about it. The compressor calls
/// <see cref="Progress"/> per stage and block; <see cref="CommandRunner"/> turns a failure into an error event.
/// </summary>
public static class ToolProgress
{
    private static readonly object Gate = new();

    public static ProgressMode Mode { get; set; } = ProgressMode.Text;

    public static Option<ProgressMode> CreateOption() => new("--progress")
    {
        Description = "Progress output: text (stderr, default), none, or jsonl (JSON lines on stdout, for the MSBuild task and scripts)",
        DefaultValueFactory = _ => ProgressMode.Text,
        Recursive = true,
    };

    public static void Progress(string stage, string message, int? block = null, int? blocks = null)
    {
        switch (Mode)
        {
            case ProgressMode.Jsonl:
                WriteLine(Console.Out, new ToolEvent(ToolEvent.Progress, stage, block, blocks, Message: message).ToJsonLine());
                break;
            case ProgressMode.Text:
                WriteLine(Console.Error, block is { } b && blocks is { } n ? $"[{stage} {b + 1}/{n}] {message}" : $"[{stage}] {message}");
                break;
        }
    }

    public static void Warning(string code, string message)
    {
        if (Mode == ProgressMode.Jsonl) WriteLine(Console.Out, new ToolEvent(ToolEvent.Warning, Code: code, Message: message).ToJsonLine());
        WriteLine(Console.Error, $"warning {code}: {message}");
    }

    /// <summary>Called by <see cref="CommandRunner"/> for a failed command; stderr gets the usual one line either way.</summary>
    public static void Error(string code, string message)
    {
        if (Mode == ProgressMode.Jsonl) WriteLine(Console.Out, new ToolEvent(ToolEvent.Error, Code: code, Message: message).ToJsonLine());
    }

    /// <summary>
    /// A command's result. Under jsonl it is the last line (<c>{"type":"result",…}</c>); otherwise it is printed as
    /// indented JSON when <paramref name="json"/> is set, and <paramref name="text"/> writes the human form.
    /// </summary>
    public static void Result<T>(T value, bool json, Action? text = null)
    {
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

    private static void WriteLine(TextWriter writer, string line)
    {
        lock (Gate)
        {
            writer.WriteLine(line);
            writer.Flush();
        }
    }
}
