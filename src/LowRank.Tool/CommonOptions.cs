using System.CommandLine;

namespace LowRank.Tool;

/// <summary>Options that several commands share, defined once so their names and help read the same everywhere.</summary>
public static class CommonOptions
{
    public static Option<string> Device() => new("--device")
    {
        Description = "auto (CUDA when a CUDA libtorch and GPU are present), cpu or cuda",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<bool> Json() => new("--json") { Description = "Write machine-readable JSON to stdout" };

    public static Option<string?> LibTorch() => new("--libtorch")
    {
        Description = "Folder holding libtorch.so (overrides LOWRANK_LIBTORCH and discovery)",
    };

    /// <summary>
    /// Checks an option's value while the command line is parsed, with the same check (and error code) the engine
    /// applies: a bad value on the command line is then "error LRK####: …" (exit 2) before anything is loaded, and a bad
    /// value from lowrank.json or LOWRANK_* is reported as LRK6002 naming the key (see ToolConfiguration).
    /// </summary>
    public static T Checked<T>(this T option, Action<object?> check) where T : Option
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 0) return;
            try
            {
                check(result.GetValueOrDefault<object?>());
            }
            catch (LrkException e)
            {
                result.AddError($"{e.Code}: {e.Message}");
            }
            catch (InvalidOperationException)
            {
                // The value did not convert; the parser reports that itself.
            }
        });
        return option;
    }
}
