namespace LowRank.Testing;

/// <summary>
/// What one child process produced: its exit code, its two streams line by line, every line in the order it arrived
/// (stdout and stderr interleaved) and the wall time from start to exit.
/// </summary>
public sealed record ProcessResult(int ExitCode, IReadOnlyList<string> Stdout, IReadOnlyList<string> Stderr, IReadOnlyList<string> Lines, TimeSpan Elapsed)
{
    /// <summary>Every line, stdout and stderr interleaved in arrival order, each ended by a newline.</summary>
    public string Output => string.Concat(Lines.Select(l => l + "\n"));

    /// <summary>Stdout alone, each line ended by a newline.</summary>
    public string StdoutText => string.Concat(Stdout.Select(l => l + "\n"));

    public string Describe() => $"exit {ExitCode}\nstdout:\n{string.Join('\n', Stdout)}\nstderr:\n{string.Join('\n', Stderr)}";

    /// <summary>Fails the test, with the whole output, unless the process exited 0.</summary>
    public ProcessResult ShouldSucceed()
    {
        Assert.True(ExitCode == 0, $"exit {ExitCode}:\n{Output}");
        return this;
    }
}
