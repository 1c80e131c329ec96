namespace LowRank.Torch;

/// <summary>What the caller asked for with <c>--device</c>.</summary>
public enum DeviceRequest
{
    Auto,
    Cpu,
    Cuda,
}
