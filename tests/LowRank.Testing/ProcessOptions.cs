using System.Diagnostics;

namespace LowRank.Testing;

/// <summary>How <see cref="ProcessRunner"/> starts a child: its environment, what it may not inherit, a line callback, a time limit.</summary>
public sealed record ProcessOptions
{
    /// <summary>Variables to set; a null value removes the variable.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();

    /// <summary>False: the child gets <see cref="Environment"/> and nothing of this process's environment.</summary>
    public bool InheritEnvironment { get; init; } = true;

    /// <summary>Inherited variables whose names start with one of these are removed before <see cref="Environment"/> applies.</summary>
    public IReadOnlyList<string> DropInheritedPrefixes { get; init; } = [];

    /// <summary>Called for each line as it arrives, with whether it came on stderr and the running process (e.g. to kill it at a given point).</summary>
    public Action<string, bool, Process>? OnLine { get; init; }

    /// <summary>Past this the whole process tree is killed and the run throws <see cref="TimeoutException"/>.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);
}
