using LowRank.Torch;

namespace LowRank.Tests.Torch;

public sealed class DeviceChoiceTests
{
    [Theory]
    [InlineData(null, DeviceRequest.Auto)]
    [InlineData("", DeviceRequest.Auto)]
    [InlineData("auto", DeviceRequest.Auto)]
    [InlineData(" CPU ", DeviceRequest.Cpu)]
    [InlineData("cuda", DeviceRequest.Cuda)]
    [InlineData("GPU", DeviceRequest.Cuda)]
    public void The_documented_device_spellings_parse(string? text, DeviceRequest expected) =>
        Assert.Equal(expected, TorchBackend.ParseDevice(text));

    [Theory]
    [InlineData("tpu")]
    [InlineData("cuda:0")] // one device per process: no index syntax (docs/error-codes.md, LRK1005)
    [InlineData("mps")]
    public void Unknown_device_names_are_rejected_with_a_code(string text)
    {
        var error = Assert.Throws<LrkException>(() => TorchBackend.ParseDevice(text));
        Assert.Equal(ErrorCodes.UnknownDevice, error.Code);
        Assert.Contains(text, error.Message);
    }

    [Fact]
    public void Cpu_request_is_served_by_the_cpu_device()
    {
        Assert.Equal(TorchSharp.DeviceType.CPU, TorchBackend.Device(DeviceRequest.Cpu).type);
    }
}
