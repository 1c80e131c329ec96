using System.CommandLine;
using System.Runtime.InteropServices;

namespace LowRank.Tool;

/// <summary>
/// Runs a command line and turns every outcome into one of the documented exit codes (<see cref="ExitCodes"/>).
/// An <see cref="LrkException"/> becomes one line on stderr with its code; Ctrl+C or SIGTERM cancels the token
/// the command runs with; anything else is a bug and is reported as such, without a stack trace unless
/// LOWRANK_DEBUG=1 or -v detailed. Every command accepts <c>--progress none|text|jsonl</c> (<see cref="ToolProgress"/>); under jsonl
/// a failure is also written to stdout as an error event.
/// </summary>
public static partial class CommandRunner
{
    public static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        using var cancellation = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            context.Cancel = true;
            cancellation.Cancel();
        });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            cancellation.Cancel();
        });

        var progress = ToolProgress.CreateOption();
        root.Options.Add(progress);
        var configFile = ToolConfiguration.ConfigOption();
        root.Options.Add(configFile);
        var noConfig = ToolConfiguration.NoConfigOption();
        root.Options.Add(noConfig);
        var verbosity = ToolVerbosity.CreateOption();
        root.Options.Add(verbosity);
        CommandExamples.AddToHelp(root);

        ParseResult parse;
        try
        {
            parse = root.Parse(args);
        }
        catch (InvalidOperationException e)
        {
            // A validator that reads a value the parser already found bad (e.g. an option given twice) must not crash the tool.
            await Console.Error.WriteLineAsync($"error {ErrorCodes.BadArgument}: {e.Message}");
            ToolProgress.Error(ErrorCodes.BadArgument, e.Message);
            return ExitCodes.Usage;
        }
        if (parse.Errors.Count == 0) ToolProgress.Mode = parse.GetValue(progress);
        else if (args.Contains("jsonl")) ToolProgress.Mode = ProgressMode.Jsonl;
        try
        {
            // Configuration fills in what the command line left out (ToolConfiguration: files < environment < --config < command line).
            var layers = ToolConfiguration.LoadLayers(Environment.CurrentDirectory, ValueOrDefault(parse, configFile), ValueOrDefault(parse, noConfig));
            ToolConfiguration.Validate(root, layers);
            var values = ToolConfiguration.ValuesFor(parse, layers);
            var configured = ToolConfiguration.Apply(root, args, values);
            if (configured.Length != args.Length) parse = root.Parse(configured);
            if (parse.Errors.Count == 0 && ToolVerbosity.Parse(parse.GetValue(verbosity)) == Verbosity.Diagnostic)
                foreach (var value in values) await Console.Error.WriteLineAsync($"configured {value.Option} = {value.Value} ({value.Key} from {value.Source})");
        }
        catch (LrkException e)
        {
            await Console.Error.WriteLineAsync($"error {e.Code}: {e.Message}");
            ToolProgress.Error(e.Code, e.Message);
            return ExitCodes.Failure;
        }
        if (parse.Errors.Count > 0 && !CommandExamples.IsHelp(parse))
        {
            foreach (var error in parse.Errors)
            {
                // Validators that share the engine's checks prefix their message with its code (CommonOptions.Checked).
                var coded = CodedMessage().Match(error.Message);
                var (code, message) = coded.Success ? (coded.Groups[1].Value, coded.Groups[2].Value) : (ErrorCodes.BadArgument, error.Message);
                await Console.Error.WriteLineAsync($"error {code}: {message}");
                ToolProgress.Error(code, message);
            }
            return ExitCodes.Usage;
        }
        ToolVerbosity.Level = ToolVerbosity.Parse(parse.GetValue(verbosity));
        // -v quiet/minimal turn progress off unless --progress itself was given (on the command line or by configuration).
        ToolProgress.Mode = ToolVerbosity.Level <= Verbosity.Minimal && parse.GetResult(progress) is null or { Implicit: true }
            ? ProgressMode.None
            : parse.GetValue(progress);
        Output.CommandPath = CommandExamples.PathOf(parse.CommandResult.Command, root);
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }, cancellation.Token);
        }
        catch (LrkException e)
        {
            ToolProgress.Finish();
            await Console.Error.WriteLineAsync($"error {e.Code}: {e.Message}");
            ToolProgress.Error(e.Code, e.Message);
            return e.ExitCode;
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            ToolProgress.Finish();
            await Console.Error.WriteLineAsync("cancelled; nothing partial was left behind");
            ToolProgress.Error(ErrorCodes.ToolCancelled, "cancelled");
            return ExitCodes.Cancelled;
        }
        catch (Exception e)
        {
            ToolProgress.Finish();
            // Native (libtorch) messages carry their C++ stack after the first line: that is for the debug output only.
            var debug = Environment.GetEnvironmentVariable("LOWRANK_DEBUG") == "1" || ToolVerbosity.Level >= Verbosity.Detailed;
            var message = debug ? e.Message : FirstLine(e.Message);
            ToolProgress.Error(ErrorCodes.Internal, $"internal error ({e.GetType().Name}: {message})");
            await Console.Error.WriteLineAsync($"error {ErrorCodes.Internal}: internal error ({e.GetType().Name}: {message}); please report it" +
                (debug ? Environment.NewLine + e : " (-v detailed or LOWRANK_DEBUG=1 shows the stack trace)"));
            return ExitCodes.Internal;
        }
        finally
        {
            ToolProgress.Finish();
        }
    }

    private static string FirstLine(string message)
    {
        var end = message.IndexOfAny(['\r', '\n']);
        return end < 0 ? message : message[..end].TrimEnd();
    }

    private static T? ValueOrDefault<T>(ParseResult parse, Option<T> option)
    {
        try
        {
            return parse.GetValue(option);
        }
        catch (InvalidOperationException)
        {
            return default;
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^(LRK\d{4}): (.*)$", System.Text.RegularExpressions.RegexOptions.Singleline)]
    private static partial System.Text.RegularExpressions.Regex CodedMessage();
}
