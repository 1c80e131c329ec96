using TorchSharp;

namespace LowRank.Torch;

public static partial class TorchBackend
{
    /// <summary>Parses <c>--device</c> (<see cref="DeviceNames"/>: auto or empty, cpu, cuda or gpu, any case).</summary>
    public static DeviceRequest ParseDevice(string? text) => DeviceNames.Parse(text, "--device");

    /// <summary>Loads the backend (once) and returns the torch device that serves <paramref name="request"/>.</summary>
    public static torch.Device Device(DeviceRequest request, string? libTorch = null)
    {
        var info = Initialize(request, libTorch);
        switch (request)
        {
            case DeviceRequest.Cpu:
                return torch.CPU;
            case DeviceRequest.Cuda:
                if (!info.CudaBuild || !torch.cuda.is_available())
                    throw new LrkException(ErrorCodes.CudaUnavailable,
                        $"--device cuda cannot be served: the loaded libtorch ({info.LibTorchSource}: {info.LibTorchDirectory}) " +
                        (info.CudaBuild ? "is a CUDA build but sees no CUDA device" : "is a CPU build") +
                        ". Tried: " + string.Join("; ", info.Tried));
                return torch.CUDA;
            default:
                return info.CudaBuild && torch.cuda.is_available() ? torch.CUDA : torch.CPU;
        }
    }
}
