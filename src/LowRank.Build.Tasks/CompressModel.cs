using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using LowRank.Cache;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace LowRank.Build.Tasks;

/// <summary>
/// Compresses one model on a cache miss by running dotnet-lowrank out of process (this process never loads
/// TorchSharp): takes the key's lock (a concurrent build of the same key waits here, then finds the entry),
/// runs <c>compress … --out &lt;cache&gt;/.tmp/&lt;key&gt;.… --progress jsonl</c>, turns the tool's JSON lines into
/// MSBuild messages, warnings and errors (with LRK codes, at the item's line), and commits the output to the cache
/// (rename, record last). Cancelling the build kills the tool's process tree and deletes its temp folder.
/// </summary>
// CA1001: MSBuild neither disposes task instances nor bounds when Cancel() may arrive, so the token source lives as long as the task.
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "MSBuild never disposes tasks; Cancel() may come at any time")]
public sealed partial class CompressModel : ToolTask
{
    private readonly CancellationTokenSource cancellation = new();
    private readonly HashSet<string> loggedErrors = new(StringComparer.Ordinal); // "code: message", so stderr repeats of JSON errors are logged once
    private ITaskItem model = null!;
    private ItemLocation at = null!;
    private string outputFolder = "";

    /// <summary>Items resolved by <see cref="ResolveCompressedModels"/> that share one key (MSBuild batches by key).</summary>
    [Required] public ITaskItem[] Models { get; set; } = [];

    /// <summary>How long to wait for another build that compresses the same key (default 24 h).</summary>
    public int LockTimeoutMinutes { get; set; } = 24 * 60;

    [Output] public string? Result { get; private set; }

    /// <summary>The items whose entry this task compressed (not those found in the cache): what a remote cache push publishes.</summary>
    [Output] public ITaskItem[] Compressed { get; private set; } = [];

    protected override string ToolName => "dotnet-lowrank";

    protected override string GenerateFullPathToTool() =>
        IsManagedDll ? ToolLocator.DotnetHost() : model.GetMetadata(MetadataNames.ToolPath);

    private bool IsManagedDll => model.GetMetadata(MetadataNames.ToolPath).EndsWith(".dll", StringComparison.OrdinalIgnoreCase);

    protected override MessageImportance StandardOutputLoggingImportance => MessageImportance.Normal;
    protected override MessageImportance StandardErrorLoggingImportance => MessageImportance.Normal;

    public override bool Execute()
    {
        if (Models.Length == 0) return true;
        model = Models[0];
        at = ItemLocation.FromMetadata(model, BuildEngine.ProjectFileOfTaskNode);
        var key = model.GetMetadata(MetadataNames.Key);
        var cache = new ModelCache(model.GetMetadata("CacheRoot"));
        var label = $"{model.ItemSpec} ({model.GetMetadata(MetadataNames.Method)}, ratio {model.GetMetadata(MetadataNames.Ratio)}, key {key[..12]})";
        try
        {
            EntryUse.HoldForBuild(BuildEngine, cache, key, cancellation.Token); // usually held since ResolveCompressedModels
            if (cache.TryGet(key) is not null) return true;
            if (FailIfNotIncremental) // msbuild -question: a compression that would run is an error instead
            {
                LowRankTask.LogItemError(Log, at, ErrorCodes.NotCached, $"{label} is not in the cache and would be compressed");
                return false;
            }
            using var held = cache.Lock(key, TimeSpan.FromMinutes(LockTimeoutMinutes), cancellation.Token,
                () => Log.LogMessage(MessageImportance.High, $"LowRank: waiting for another build that is compressing {label}"));
            if (cache.TryGet(key) is not null)
            {
                Log.LogMessage(MessageImportance.High, $"LowRank: {label} was compressed by another build; using the cached entry");
                return true;
            }
            outputFolder = cache.PrepareTemp(held, key);
            Log.LogMessage(MessageImportance.High, $"LowRank: compressing {label} with {model.GetMetadata(MetadataNames.ToolPath)}");
            var clock = Stopwatch.StartNew();
            var ran = base.Execute();
            if (cancellation.IsCancellationRequested || !ran || ExitCode != 0)
            {
                ModelCache.DeleteTree(outputFolder);
                return false;
            }
            if (!Directory.Exists(outputFolder))
            {
                LowRankTask.LogItemError(Log, at, ErrorCodes.ToolOutputMissing, $"the compressor exited 0 but wrote nothing to {outputFolder}");
                return false;
            }
            var entry = cache.Commit(held, CacheKey.Parse(model.GetMetadata(MetadataNames.KeyText)), outputFolder);
            Compressed = Models;
            Log.LogMessage(MessageImportance.High,
                $"LowRank: compressed {label} in {clock.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)} s -> {entry.Folder} ({entry.Record.Files.Count} files, {entry.Record.TotalBytes} bytes)");
            return !Log.HasLoggedErrors;
        }
        catch (OperationCanceledException)
        {
            if (outputFolder.Length > 0) ModelCache.DeleteTree(outputFolder);
            return false;
        }
        catch (LrkException e)
        {
            if (outputFolder.Length > 0) ModelCache.DeleteTree(outputFolder);
            LowRankTask.LogItemError(Log, at, e.Code, e.Message);
            return false;
        }
    }

    public override void Cancel()
    {
        cancellation.Cancel();
        base.Cancel(); // ToolTask kills the tool's whole process tree
    }

    protected override string GenerateCommandLineCommands() => CommandLine(model, outputFolder);

    /// <summary>The tool's command line for a resolved item: it only renders what <see cref="ResolveCompressedModels"/>
    /// parsed (<see cref="MetadataNames.Arguments"/>), quoting a value only where it needs it.</summary>
    internal static string CommandLine(ITaskItem model, string outputFolder)
    {
        var args = new CommandLineBuilder(quoteHyphensOnCommandLine: false, useNewLineSeparator: false);
        var tool = model.GetMetadata(MetadataNames.ToolPath);
        if (tool.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) args.AppendFileNameIfNotNull(tool);
        args.AppendSwitch("compress");
        args.AppendFileNameIfNotNull(model.GetMetadata(MetadataNames.SourceModel));
        foreach (var argument in JsonSerializer.Deserialize<string[]>(model.GetMetadata(MetadataNames.Arguments)) ?? []) args.AppendSwitchIfNotNull("", argument);
        args.AppendSwitchIfNotNull("--out ", outputFolder);
        args.AppendSwitch("--progress jsonl");
        // The result must depend only on the item's metadata (the cache key): no lowrank.json, no LOWRANK_* defaults.
        args.AppendSwitch("--no-config");
        return args.ToString();
    }

    protected override void LogEventsFromTextOutput(string singleLine, MessageImportance messageImportance)
    {
        var e = ToolEvent.TryParse(singleLine);
        if (e is null)
        {
            // stderr repeats errors as "error LRK####: …"; the JSON error event already reported them.
            var plain = PlainError().Match(singleLine);
            if (plain.Success)
            {
                LogToolError(plain.Groups[1].Value, plain.Groups[2].Value.Trim());
            }
            else if (!string.IsNullOrWhiteSpace(singleLine))
            {
                Log.LogMessage(MessageImportance.Low, singleLine);
            }
            return;
        }
        switch (e.Type)
        {
            case ToolEvent.Progress:
                var where = e.Block is { } b && e.Blocks is { } n ? $" {b + 1}/{n}" : "";
                // A stage's start is worth seeing at the default verbosity; each block only in detailed logs.
                Log.LogMessage(e.Block is null or 0 ? MessageImportance.High : MessageImportance.Normal, $"LowRank: [{e.Stage}{where}] {e.Message}");
                break;
            case ToolEvent.Warning:
                LowRankTask.LogItemWarning(Log, at, e.Code ?? ErrorCodes.ToolFailed, e.Message ?? "");
                break;
            case ToolEvent.Error:
                LogToolError(e.Code ?? ErrorCodes.ToolFailed, (e.Message ?? "the compressor failed").Trim());
                break;
            case ToolEvent.Result:
                Result = singleLine.Trim();
                Log.LogMessage(MessageImportance.Normal, $"LowRank: result {Result}");
                break;
            default:
                Log.LogMessage(MessageImportance.Low, singleLine);
                break;
        }
    }

    private void LogToolError(string code, string message)
    {
        if (loggedErrors.Add($"{code}: {message}")) LowRankTask.LogItemError(Log, at, code, message);
    }

    /// <summary>The tool's own errors are already logged with their codes; only an exit without one needs LRK7002.</summary>
    protected override bool HandleTaskExecutionErrors()
    {
        if (cancellation.IsCancellationRequested)
        {
            Log.LogMessage(MessageImportance.High, "LowRank: compression cancelled; the tool was stopped and its partial output deleted");
            return false;
        }
        if (loggedErrors.Count == 0)
            LowRankTask.LogItemError(Log, at, ErrorCodes.ToolFailed, $"the compressor exited with code {ExitCode} without reporting an error (see the detailed build log)");
        return false;
    }

    [GeneratedRegex(@"^\s*error (LRK\d{4}): (.*)$")]
    private static partial Regex PlainError();
}
