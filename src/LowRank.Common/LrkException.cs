namespace LowRank;

/// <summary>
/// An expected failure with a stable code (<c>LRK####</c>, see <see cref="ErrorCodes"/>). Commands print it as one
/// line and exit with <see cref="ExitCodes.Failure"/>; the MSBuild task logs it as an error with that code.
/// Anything that is not an <see cref="LrkException"/> is a bug.
/// </summary>
public sealed class LrkException : Exception
{
    public LrkException(string code, string message, Exception? inner = null) : base(message, inner)
    {
        Code = code;
    }

    public LrkException() : this(ErrorCodes.Internal, "unexpected error") { }

    public LrkException(string message) : this(ErrorCodes.Internal, message) { }

    public LrkException(string message, Exception innerException) : this(ErrorCodes.Internal, message, innerException) { }

    public string Code { get; }

    /// <summary>The process exit code a command ends with: <see cref="ExitCodes.Failure"/>, or <see cref="ExitCodes.CheckFailed"/>
    /// for a measurement that ran and failed (a NaN perplexity).</summary>
    public int ExitCode { get; init; } = ExitCodes.Failure;

    public override string ToString() => $"{Code}: {Message}";
}

/// <summary>Process exit codes of <c>dotnet lowrank</c>, documented in the README.</summary>
public static class ExitCodes
{
    public const int Success = 0;
    /// <summary>An <see cref="LrkException"/>: bad input or an environment problem; the message says which.</summary>
    public const int Failure = 1;
    /// <summary>The command line could not be parsed.</summary>
    public const int Usage = 2;
    /// <summary>A check ran and failed (doctor self-test, cache verify, manifest verify).</summary>
    public const int CheckFailed = 3;
    /// <summary>Cancelled by Ctrl+C / SIGINT / SIGTERM; nothing partial was left behind.</summary>
    public const int Cancelled = 130;
    /// <summary>A bug: an unexpected exception. The message asks for a report.</summary>
    public const int Internal = 70;
}
