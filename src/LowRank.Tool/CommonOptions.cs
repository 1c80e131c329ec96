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
}
