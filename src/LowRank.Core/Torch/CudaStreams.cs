using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Torch;

/// <summary>
/// A second CUDA stream for torch work issued from one host thread: what <c>with torch.cuda.stream(s):</c> does in
/// Python, which TorchSharp 0.107 does not wrap. The compressor's decomposition worker (fp64 Cholesky, eigh and their
/// products) runs on it while the default stream profiles the next block, so the latency-bound cuSOLVER kernels fill
/// the gaps of the GEMM-bound forward passes.
/// <para>How: a non-blocking stream made with the CUDA runtime (<c>cudaStreamCreateWithPriority</c>, highest priority,
/// so its small kernels get the next free SMs), wrapped by c10's <c>getStreamFromExternal</c> and made the calling
/// thread's current stream with <c>setCurrentCUDAStream</c> (c10 keeps the current stream per thread). Every torch call
/// from that thread — kernels, cuBLAS/cuSOLVER handles, the caching allocator's stream tag — then uses it.</para>
/// <para>A third stream, the copy stream (<see cref="UseCopyStreamOnThisThread"/>), carries a streamed model's next block
/// to the GPU while the current one computes (<see cref="StreamWorker.ForCopies"/>).</para>
/// <para>The rules that make sharing tensors across the streams safe (the caching allocator reuses a freed block on
/// the stream that allocated it, without waiting for other streams): a tensor made on one stream is handed to the other
/// only after its producer stream was synchronised; a tensor used on the side stream is freed only after the side
/// stream was synchronised; results come back after the side stream was synchronised.
/// <see cref="LowRank.Compression.DecompositionWorker"/> follows them.</para>
/// Where a symbol is missing (another libtorch build) <see cref="Available"/> is false with the reason in
/// <see cref="Status"/>, and callers run everything on the default stream.
/// </summary>
public static unsafe class CudaStreams
{
    private const uint CudaStreamNonBlocking = 1;
    private static readonly CudaFeature<Streams> Feature = new("off (one stream): ");

    [ThreadStatic] private static IntPtr currentSide;

    /// <summary>What is in use, or why not.</summary>
    public static string Status => Feature.Status;

    /// <summary>True when a side stream can be made current for a thread on <paramref name="device"/>.</summary>
    public static bool Available(Device device) => Feature.Available(device, SetUp);

    private static (Streams, string) SetUp(Device device)
    {
        var f = Functions.Resolve();
        var index = device.index < 0 ? 0 : device.index;
        CudaNative.Check(f.CudaSetDevice(index), "cudaSetDevice");
        int least, greatest;
        CudaNative.Check(f.CudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
        // One stream for the process, never destroyed: the caching allocator keeps blocks tagged with it.
        IntPtr side;
        CudaNative.Check(f.CudaStreamCreateWithPriority(&side, CudaStreamNonBlocking, greatest), "cudaStreamCreateWithPriority");
        // And one for host→device copies of the next block's weights (the copy engine, beside any compute).
        IntPtr copies;
        CudaNative.Check(f.CudaStreamCreateWithPriority(&copies, CudaStreamNonBlocking, least), "cudaStreamCreateWithPriority");
        return (new Streams(f, side, copies, index), $"side stream (priority {greatest} of [{greatest}, {least}]) via c10 getStreamFromExternal");
    }

    /// <summary>The resolved functions and the two streams of the process, on CUDA device <c>Device</c>.</summary>
    private sealed record Streams(Functions Functions, IntPtr Side, IntPtr Copy, int Device);

    /// <summary>Makes the side stream the calling thread's current stream (for every torch call the thread makes from now on).</summary>
    public static void UseSideStreamOnThisThread()
    {
        var streams = Feature.Value ?? throw new InvalidOperationException("CudaStreams is not available: " + Status);
        var f = streams.Functions;
        var wrapped = f.GetStreamFromExternal(streams.Side, (sbyte)streams.Device);
        f.SetCurrentCudaStream(wrapped);
        currentSide = streams.Side;
    }

    /// <summary>Makes the copy stream the calling thread's current stream: a thread that only moves weights to the device
    /// then copies beside the compute streams. Tensors it allocates belong to that stream's pool, so whoever frees one
    /// must first synchronise the streams that used it (<see cref="SynchronizeDevice"/>).</summary>
    public static void UseCopyStreamOnThisThread()
    {
        var streams = Feature.Value ?? throw new InvalidOperationException("CudaStreams is not available: " + Status);
        var f = streams.Functions;
        f.SetCurrentCudaStream(f.GetStreamFromExternal(streams.Copy, (sbyte)streams.Device));
        currentSide = streams.Copy;
    }

    /// <summary>Waits for every stream of <paramref name="device"/> (what <c>torch.cuda.synchronize</c> does).</summary>
    public static void SynchronizeDevice(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }

    /// <summary>Waits for the work this thread issued: on its side stream, or on the default stream (not for the other
    /// stream's work, which <c>torch.cuda.synchronize</c> would also wait for).</summary>
    public static void SynchronizeThisThread(Device device)
    {
        if (device.type != DeviceType.CUDA) return;
        if (Feature.Value is { } streams) CudaNative.Check(streams.Functions.CudaStreamSynchronize(currentSide), "cudaStreamSynchronize");
        else cuda.synchronize(device);
    }

    /// <summary>c10::cuda::CUDAStream by value: c10::Stream { Device { int8 type, int8 index }, int64 id }, 16 bytes,
    /// trivially copyable, so the SysV ABI passes and returns it in two integer registers.</summary>
    private struct C10Stream
    {
#pragma warning disable CS0649 // written by native code
        public long DeviceBits;
        public long Id;
#pragma warning restore CS0649
    }

    private sealed class Functions
    {
        public required delegate* unmanaged<int, int> CudaSetDevice { get; init; }
        public required delegate* unmanaged<int*, int*, int> CudaDeviceGetStreamPriorityRange { get; init; }
        public required delegate* unmanaged<IntPtr*, uint, int, int> CudaStreamCreateWithPriority { get; init; }
        public required delegate* unmanaged<IntPtr, int> CudaStreamSynchronize { get; init; }
        public required delegate* unmanaged<IntPtr, sbyte, C10Stream> GetStreamFromExternal { get; init; }
        public required delegate* unmanaged<C10Stream, void> SetCurrentCudaStream { get; init; }

        public static Functions Resolve()
        {
            var cudart = CudaNative.Api.Library("libcudart.so");
            var c10 = CudaNative.Api.Library("libc10_cuda.so");
            return new Functions
            {
                CudaSetDevice = (delegate* unmanaged<int, int>)CudaNative.Api.Symbol(cudart, "cudaSetDevice"),
                CudaDeviceGetStreamPriorityRange = (delegate* unmanaged<int*, int*, int>)CudaNative.Api.Symbol(cudart, "cudaDeviceGetStreamPriorityRange"),
                CudaStreamCreateWithPriority = (delegate* unmanaged<IntPtr*, uint, int, int>)CudaNative.Api.Symbol(cudart, "cudaStreamCreateWithPriority"),
                CudaStreamSynchronize = (delegate* unmanaged<IntPtr, int>)CudaNative.Api.Symbol(cudart, "cudaStreamSynchronize"),
                // c10::cuda::getStreamFromExternal(cudaStream_t, DeviceIndex) and c10::cuda::setCurrentCUDAStream(CUDAStream).
                GetStreamFromExternal = (delegate* unmanaged<IntPtr, sbyte, C10Stream>)CudaNative.Api.Symbol(c10, "_ZN3c104cuda21getStreamFromExternalEP11CUstream_sta"),
                SetCurrentCudaStream = (delegate* unmanaged<C10Stream, void>)CudaNative.Api.Symbol(c10, "_ZN3c104cuda20setCurrentCUDAStreamENS0_10CUDAStreamE"),
            };
        }
    }
}
