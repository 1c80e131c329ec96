namespace LowRank.Bench.Fuzz;

/// <summary>How one fuzz case ended. Only <see cref="CodedError"/> and <see cref="Accepted"/> are fine.</summary>
public enum FuzzClass
{
    /// <summary>Exit 1–3 with an LRK code other than LRK0001: the input was refused as it should be.</summary>
    CodedError,
    /// <summary>Exit 0 and every check of the result passed.</summary>
    Accepted,
    /// <summary>Exit 70, LRK0001, an unhandled exception, a signal, or a refusal without an LRK code or outside 1–3.</summary>
    Crash,
    /// <summary>Still running at the case's time limit (killed).</summary>
    Hang,
    /// <summary>Resident memory over the case's cap (killed).</summary>
    MemoryBlowUp,
    /// <summary>Exit 0 with a wrong result: non-finite numbers written or printed, a tampered input accepted as intact.</summary>
    SilentWrong,
}

public static class FuzzClasses
{
    public static string Name(FuzzClass c) => c switch
    {
        FuzzClass.CodedError => "coded-error",
        FuzzClass.Accepted => "accepted",
        FuzzClass.Crash => "crash",
        FuzzClass.Hang => "hang",
        FuzzClass.MemoryBlowUp => "memory-blow-up",
        FuzzClass.SilentWrong => "silent-wrong",
        _ => c.ToString(),
    };

    public static bool IsFailure(FuzzClass c) => c is FuzzClass.Crash or FuzzClass.Hang or FuzzClass.MemoryBlowUp or FuzzClass.SilentWrong;
}
