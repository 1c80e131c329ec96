namespace LowRank.Torch;

/// <summary>The libtorch that was loaded into this process, and how it was found.</summary>
public sealed record TorchBackendInfo(
    string TorchSharpVersion,
    string LibTorchDirectory,
    string LibTorchSource,
    string LibTorchSharpPath,
    bool CompatFix,
    bool CudaBuild,
    IReadOnlyList<string> Tried);
