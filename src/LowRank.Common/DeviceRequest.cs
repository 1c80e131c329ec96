namespace LowRank;

/// <summary>Where a run computes, as <c>--device</c> and the MSBuild <c>Device</c> metadata ask for it
/// (<see cref="DeviceNames"/> parses the spellings).</summary>
public enum DeviceRequest
{
    Auto,
    Cpu,
    Cuda,
}
