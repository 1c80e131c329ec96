using System.CommandLine;

namespace LowRank.Tool;

/// <summary>dotnet's verbosity levels, as <c>-v|--verbosity</c> takes them (full names or their abbreviations).</summary>
public enum Verbosity
{
    Quiet,
    Minimal,
    Normal,
    Detailed,
    Diagnostic,
}

/// <summary>
/// <c>-v|--verbosity q[uiet]|m[inimal]|n[ormal]|d[etailed]|diag[nostic]</c> on every command, with dotnet's spellings.
/// What each level changes: quiet and minimal turn progress off (unless <c>--progress</c> is given; results, warnings
/// and errors are still printed); normal is the default; detailed adds the stack trace to an internal error (as
/// <c>LOWRANK_DEBUG=1</c> does); diagnostic also prints, on stderr, every option value that configuration
/// (lowrank.json, LOWRANK_*) filled in and where it came from.
/// </summary>
public static class ToolVerbosity
{
    public static Verbosity Level { get; set; } = Verbosity.Normal;

    public static Option<string> CreateOption()
    {
        var option = new Option<string>("--verbosity", "-v")
        {
            Description = "Output verbosity: q[uiet], m[inimal], n[ormal], d[etailed] or diag[nostic]",
            DefaultValueFactory = _ => "normal",
            HelpName = "level",
            Recursive = true,
        };
        option.AcceptOnlyFromAmong("q", "quiet", "m", "minimal", "n", "normal", "d", "detailed", "diag", "diagnostic");
        return option;
    }

    public static Verbosity Parse(string? value) => value?.ToLowerInvariant() switch
    {
        "q" or "quiet" => Verbosity.Quiet,
        "m" or "minimal" => Verbosity.Minimal,
        "d" or "detailed" => Verbosity.Detailed,
        "diag" or "diagnostic" => Verbosity.Diagnostic,
        _ => Verbosity.Normal,
    };
}
