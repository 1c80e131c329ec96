namespace LowRank;

/// <summary>
/// The spellings of <c>--device</c> and the MSBuild <c>Device</c> metadata: <c>auto</c> (or empty), <c>cpu</c>,
/// <c>cuda</c> or <c>gpu</c> (a synonym of cuda), any case, surrounding blanks ignored. There is no <c>cuda:N</c>: a
/// process uses the first visible GPU. Torch-free, so the MSBuild task rejects a bad device at the item's line with
/// the code the tool uses (<see cref="ErrorCodes.UnknownDevice"/>).
/// </summary>
public static class DeviceNames
{
    /// <summary>The canonical spellings, for help and error messages.</summary>
    public const string Spellings = "auto, cpu or cuda";

    /// <summary>Parses a spelling, or returns false.</summary>
    public static bool TryParse(string? text, out DeviceRequest device)
    {
        DeviceRequest? parsed = (text ?? "").Trim().ToLowerInvariant() switch
        {
            "auto" or "" => DeviceRequest.Auto,
            "cpu" => DeviceRequest.Cpu,
            "cuda" or "gpu" => DeviceRequest.Cuda,
            _ => null,
        };
        device = parsed ?? default;
        return parsed is not null;
    }

    /// <summary>Parses a spelling, or fails with <see cref="ErrorCodes.UnknownDevice"/> naming <paramref name="name"/>
    /// (<c>--device</c>, or <c>Device</c> on an item) and the valid spellings.</summary>
    public static DeviceRequest Parse(string? text, string name) => TryParse(text, out var device)
        ? device
        : throw new LrkException(ErrorCodes.UnknownDevice, $"unknown device {name}='{text}': use {Spellings}");

    /// <summary>The canonical spelling: auto, cpu or cuda (what the tool's command line carries).</summary>
    public static string Name(this DeviceRequest device) => device switch
    {
        DeviceRequest.Cpu => "cpu",
        DeviceRequest.Cuda => "cuda",
        _ => "auto",
    };
}
