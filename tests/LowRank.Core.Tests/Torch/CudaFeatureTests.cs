using LowRank.Torch;
using TorchSharp;

namespace LowRank.Tests.Torch;

public sealed class CudaFeatureTests
{
    private static readonly torch.Device Cuda0 = new(DeviceType.CUDA, 0);

    public CudaFeatureTests() => TorchBackend.Initialize(DeviceRequest.Cpu);

    [Fact]
    public void A_cpu_device_never_runs_the_set_up()
    {
        var feature = new CudaFeature<string>("off: ");
        var runs = 0;
        Assert.False(feature.Available(torch.CPU, _ => { runs++; return ("x", "on"); }));
        Assert.Equal(0, runs);
        Assert.Equal("not initialised", feature.Status);
    }

    [Fact]
    public void The_set_up_runs_once_and_its_value_and_status_are_kept()
    {
        var feature = new CudaFeature<string>("off: ");
        var runs = 0;
        (string, string) SetUp(torch.Device device) { runs++; return ($"handle for {device.index}", "on, via test"); }
        Assert.True(feature.Available(Cuda0, SetUp));
        Assert.True(feature.Available(Cuda0, SetUp));
        Assert.Equal(1, runs);
        Assert.Equal("handle for 0", feature.Value);
        Assert.Equal("on, via test", feature.Status);
    }

    [Fact]
    public void A_missing_library_turns_it_off_for_good_with_the_reason()
    {
        var feature = new CudaFeature<string>("off (fallback): ");
        var runs = 0;
        (string, string) SetUp(torch.Device _) { runs++; throw new DllNotFoundException("libfoo.so* not found"); }
        Assert.False(feature.Available(Cuda0, SetUp));
        Assert.False(feature.Available(Cuda0, SetUp));
        Assert.Equal(1, runs);
        Assert.Null(feature.Value);
        Assert.Equal("off (fallback): libfoo.so* not found", feature.Status);
    }

    [Fact]
    public void An_unexpected_exception_is_a_bug_and_propagates()
    {
        var feature = new CudaFeature<string>("off: ");
        Assert.Throws<ArgumentException>(() => feature.Available(Cuda0, _ => throw new ArgumentException("bug")));
    }

    [Fact]
    public void Without_cuda_libraries_the_kernels_and_streams_are_off_and_say_why()
    {
        if (TorchBackend.Loaded!.CudaBuild) return; // a CUDA libtorch may really serve them
        Assert.False(CudaNative.Available(Cuda0));
        Assert.StartsWith("off (torch kernels used instead): libcudart.so", CudaNative.Status);
        Assert.False(CudaStreams.Available(Cuda0));
        Assert.StartsWith("off (one stream): libcudart.so", CudaStreams.Status);
    }
}
