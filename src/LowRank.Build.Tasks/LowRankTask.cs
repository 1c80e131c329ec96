using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace LowRank.Build.Tasks;

/// <summary>
/// Base of the in-process tasks (the dotnet/sdk TaskBase shape): an <see cref="LrkException"/> becomes one MSBuild
/// error carrying its LRK code, pointing at the project file or at the item's line; the task returns
/// <c>!Log.HasLoggedErrors</c>. Anything else is a bug and is logged with its type, not as a stack trace dump.
/// </summary>
public abstract class LowRankTask : Microsoft.Build.Utilities.Task
{
    public override bool Execute()
    {
        try
        {
            ExecuteCore();
        }
        catch (LrkException e)
        {
            Log.LogError("LowRank", e.Code, null, BuildEngine.ProjectFileOfTaskNode, 0, 0, 0, 0, e.Message);
        }
        catch (OperationCanceledException)
        {
            Log.LogError("LowRank", ErrorCodes.ToolCancelled, null, BuildEngine.ProjectFileOfTaskNode, 0, 0, 0, 0, "cancelled");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log.LogError("LowRank", ErrorCodes.Internal, null, BuildEngine.ProjectFileOfTaskNode, 0, 0, 0, 0,
                $"internal error in {GetType().Name} ({e.GetType().Name}: {e.Message}); please report it");
        }
        return !Log.HasLoggedErrors;
    }

    protected abstract void ExecuteCore();

    internal static void LogItemError(TaskLoggingHelper log, ItemLocation at, string code, string message) =>
        log.LogError("LowRank", code, null, at.File, at.Line, at.Column, 0, 0, message);

    internal static void LogItemWarning(TaskLoggingHelper log, ItemLocation at, string code, string message) =>
        log.LogWarning("LowRank", code, null, at.File, at.Line, at.Column, 0, 0, message);
}
