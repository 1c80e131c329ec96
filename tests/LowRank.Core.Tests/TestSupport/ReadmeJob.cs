using LowRank.Compression;
using LowRank.Data;
using LowRank.Jobs;
using LowRank.Torch;

namespace LowRank.Tests.TestSupport;

/// <summary>The compress job of the end-to-end tests: a committed self-trained model (models/), calibrated on the
/// repository README (8 samples × 64 tokens), on the CPU.</summary>
internal static class ReadmeJob
{
    public static CompressionJobOptions For(string model, string output, CompressionOptions compression) => new()
    {
        Model = RepoPaths.Model(model),
        Out = output,
        Compression = compression,
        Calibration = new CalibrationSpec { Text = RepoPaths.Readme, Samples = 8, SeqLen = 64 },
        Device = DeviceRequest.Cpu,
    };
}
