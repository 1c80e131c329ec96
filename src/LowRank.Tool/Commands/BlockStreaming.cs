namespace LowRank.Tool.Commands;

/// <summary><c>compress --stream-blocks</c>: whether only the block being compressed is on the GPU, weights read as needed.</summary>
internal enum BlockStreaming
{
    /// <summary>On for GPUs, except FWSVD (its backward passes need the whole model resident).</summary>
    Auto,
    On,
    Off,
}

internal static class BlockStreamings
{
    /// <summary>auto, on or off (true and false too), any case; else <see cref="ErrorCodes.BadArgument"/>.</summary>
    public static BlockStreaming Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "auto" => BlockStreaming.Auto,
        "on" or "true" => BlockStreaming.On,
        "off" or "false" => BlockStreaming.Off,
        _ => throw new LrkException(ErrorCodes.BadArgument, $"--stream-blocks '{text}': use auto, on or off"),
    };

    /// <summary>What <see cref="LowRank.Jobs.CompressionJobOptions.StreamBlocks"/> takes: null for auto.</summary>
    public static bool? AsOption(this BlockStreaming streaming) => streaming switch
    {
        BlockStreaming.On => true,
        BlockStreaming.Off => false,
        _ => null,
    };
}
