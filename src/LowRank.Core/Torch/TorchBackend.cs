using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;

namespace LowRank.Torch;

/// <summary>
/// Loads TorchSharp's native library against a libtorch chosen explicitly, once per process, before any tensor
/// is made. One code path serves CPU and CUDA: only the libtorch folder differs.
/// <para>The load sequence (<see cref="Initialize"/>): find libtorch (<see cref="LibTorchDiscovery"/>, which holds the
/// search order) and TorchSharp's libLibTorchSharp.so; on hosts whose libstdc++ is too old, swap the latter for the
/// patched copy and load the shim (<see cref="LibStdCxxCompat"/>); prefer expandable CUDA allocator segments; dlopen
/// libtorch's libraries and libLibTorchSharp.so and bind TorchSharp's imports to them (<see cref="NativeLibraries"/>);
/// initialise TorchSharp's device types. <c>--device</c> is parsed and served in <c>TorchBackend.DeviceChoice.cs</c>.</para>
/// </summary>
public static partial class TorchBackend
{
    public const string LibTorchVariable = "LOWRANK_LIBTORCH";

    /// <summary>Name of PyTorch's CUDA caching-allocator settings variable.</summary>
    public const string AllocatorConfVariable = "PYTORCH_CUDA_ALLOC_CONF";

    private static readonly object Gate = new();
    private static TorchBackendInfo? loaded;

    public static TorchBackendInfo? Loaded => loaded;

    public static TorchBackendInfo Initialize(DeviceRequest request = DeviceRequest.Auto, string? libTorch = null)
    {
        lock (Gate)
        {
            if (loaded is not null) return loaded;
            if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
                throw new LrkException(ErrorCodes.NativeLoadFailed,
                    $"this build of LowRank supports linux-x64 only (this process: {RuntimeInformation.RuntimeIdentifier})");

            var tried = new List<string>();
            var location = LibTorchDiscovery.FindLibTorch(request, libTorch ?? Environment.GetEnvironmentVariable(LibTorchVariable), tried);
            var stockLibrary = LibTorchDiscovery.FindLibTorchSharp(tried);
            var compatFix = LibStdCxxCompat.Needed();
            var libTorchSharp = compatFix ? LibStdCxxCompat.PatchedLibTorchSharp(stockLibrary) : stockLibrary;

            if (location.CudaBuild) PreferExpandableSegments();
            NativeLibraries.LoadTorch(location, libTorchSharp);
            InitializeDeviceTypes(request, location);

            loaded = new TorchBackendInfo(TorchSharpVersion(), location.Directory, location.Source, libTorchSharp, compatFix, location.CudaBuild, tried);
            return loaded;
        }
    }

    /// <summary>Seeds every generator torch uses, so CPU runs repeat exactly.</summary>
    public static void Seed(long seed)
    {
        torch.manual_seed(seed);
        if (loaded?.CudaBuild == true && torch.cuda.is_available()) torch.cuda.manual_seed_all(seed);
    }

    /// <summary>
    /// Sets <c>PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True</c> unless the user set the variable: block streaming
    /// allocates and frees tensors of many sizes (Grams from 4096² to 28672², fp64 temporaries, activations), which
    /// fragments fixed-size segments; expandable segments map more memory into one segment instead, so the reserved
    /// memory stays near what is in use. It has to be in the native environment before the allocator first runs
    /// (.NET's <see cref="Environment.SetEnvironmentVariable(string, string)"/> does not reach it on Linux), hence setenv.
    /// </summary>
    private static void PreferExpandableSegments()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(AllocatorConfVariable))) return;
        _ = setenv(AllocatorConfVariable, "expandable_segments:True", 0);
    }

    private static void InitializeDeviceTypes(DeviceRequest request, LibTorchLocation location)
    {
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            if (location.CudaBuild && request != DeviceRequest.Cpu && torch.cuda.is_available())
                torch.InitializeDeviceType(DeviceType.CUDA);
        }
        catch (Exception e) when (e is not LrkException)
        {
            throw new LrkException(ErrorCodes.NativeLoadFailed, $"TorchSharp failed to initialise with {location.Directory}: {e.Message}", e);
        }
    }

    private static string TorchSharpVersion() =>
        typeof(torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown";

    [DllImport("libc.so.6", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int setenv(string name, string value, int overwrite);
}
