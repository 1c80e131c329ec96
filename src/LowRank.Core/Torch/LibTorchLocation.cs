namespace LowRank.Torch;

/// <summary>A libtorch folder <see cref="LibTorchDiscovery"/> chose: where it is, which rule found it, and whether it
/// is a CUDA build (holds libtorch_cuda.so).</summary>
internal sealed record LibTorchLocation(string Directory, string Source, bool CudaBuild);
