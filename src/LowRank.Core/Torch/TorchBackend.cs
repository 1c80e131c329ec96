using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;

namespace LowRank.Torch;

/// <summary>The libtorch that was loaded into this process, and how it was found.</summary>
public sealed record TorchBackendInfo(
    string TorchSharpVersion,
    string LibTorchDirectory,
    string LibTorchSource,
    string LibTorchSharpPath,
    bool CompatFix,
    bool CudaBuild,
    IReadOnlyList<string> Tried);

/// <summary>
/// Loads TorchSharp's native library against a libtorch chosen explicitly, once per process, before any tensor
/// is made. One code path serves CPU and CUDA: only the libtorch folder differs.
/// <para>Search order, first hit wins:</para>
/// <list type="number">
/// <item><c>LOWRANK_LIBTORCH</c> (or the <c>libTorch</c> argument): a folder holding libtorch.so.</item>
/// <item>CUDA requested or auto: a referenced TorchSharp CUDA runtime package (<c>libtorch-cuda-*</c>) next to the app or in the NuGet folder.</item>
/// <item>CUDA requested or auto: a PyTorch installation with CUDA found through <c>python3</c>.</item>
/// <item>CPU: <c>libtorch-cpu-linux-x64</c> next to the app or in the NuGet package folder (restored with this repo).</item>
/// <item>CPU: any PyTorch installation found through <c>python3</c>.</item>
/// </list>
/// On hosts whose libstdc++ lacks <c>GLIBCXX_3.4.32</c> the stock libLibTorchSharp.so cannot load; then a copy
/// with that version requirement marked weak is used together with a one-function shim built from
/// <c>native/ios_base_library_init.cpp</c> by the host's g++ (both cached under <see cref="LowRankPaths.NativeCache"/>).
/// </summary>
public static class TorchBackend
{
    public const string LibTorchVariable = "LOWRANK_LIBTORCH";
    private const string RequiredGlibcxx = "GLIBCXX_3.4.32";
    private const int RtldNow = 0x2;
    private const int RtldGlobal = 0x100;

    private static readonly object Gate = new();
    private static readonly Dictionary<string, IntPtr> LoadedByName = new(StringComparer.Ordinal);
    private static TorchBackendInfo? loaded;

    public static TorchBackendInfo? Loaded => loaded;

    public static DeviceRequest ParseDevice(string? text) => (text ?? "auto").Trim().ToLowerInvariant() switch
    {
        "auto" or "" => DeviceRequest.Auto,
        "cpu" => DeviceRequest.Cpu,
        "cuda" or "gpu" => DeviceRequest.Cuda,
        _ => throw new LrkException(ErrorCodes.UnknownDevice, $"unknown device '{text}': use auto, cpu or cuda"),
    };

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

    public static TorchBackendInfo Initialize(DeviceRequest request = DeviceRequest.Auto, string? libTorch = null)
    {
        lock (Gate)
        {
            if (loaded is not null) return loaded;
            if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
                throw new LrkException(ErrorCodes.NativeLoadFailed,
                    $"this build of LowRank supports linux-x64 only (this process: {RuntimeInformation.RuntimeIdentifier})");

            var tried = new List<string>();
            var location = FindLibTorch(request, libTorch ?? Environment.GetEnvironmentVariable(LibTorchVariable), tried)
                ?? throw new LrkException(request == DeviceRequest.Cuda ? ErrorCodes.CudaUnavailable : ErrorCodes.LibTorchNotFound,
                    (request == DeviceRequest.Cuda ? "no CUDA libtorch found" : "no libtorch found") +
                    ". Tried: " + string.Join("; ", tried) +
                    $". Get one of: {LibTorchVariable}=<a folder holding libtorch.so> (any libtorch 2.10, e.g. PyTorch's torch/lib); " +
                    "PyTorch for python3 (pip install torch); or the NuGet package libtorch-cpu-linux-x64 2.10.0 in the NuGet packages folder " +
                    "('bash eng/setup.sh' in a LowRank checkout, or 'dotnet restore' of any project referencing it).");

            var stockLibrary = FindLibTorchSharp(tried);
            var needsCompat = !HostLibStdCxxHas(RequiredGlibcxx);
            var libTorchSharp = needsCompat ? PrepareCompatLibrary(stockLibrary) : stockLibrary;

            if (location.CudaBuild) PreferExpandableSegments();
            foreach (var name in location.CudaBuild
                         ? new[] { "libc10.so", "libc10_cuda.so", "libtorch_cpu.so", "libtorch_cuda.so", "libtorch.so" }
                         : new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" })
            {
                var path = Path.Combine(location.Directory, name);
                if (File.Exists(path)) LoadedByName[Path.GetFileNameWithoutExtension(name)[3..]] = LoadGlobal(path);
            }
            LoadedByName["LibTorchSharp"] = LoadGlobal(libTorchSharp);
            NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, Resolve);

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

            loaded = new TorchBackendInfo(
                typeof(torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
                    ?? typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown",
                location.Directory, location.Source, libTorchSharp, needsCompat, location.CudaBuild, tried);
            return loaded;
        }
    }

    /// <summary>Name of PyTorch's CUDA caching-allocator settings variable.</summary>
    public const string AllocatorConfVariable = "PYTORCH_CUDA_ALLOC_CONF";

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

    /// <summary>An exported function of the loaded libLibTorchSharp.so (for the few calls TorchSharp does not wrap).</summary>
    internal static IntPtr LibTorchSharpExport(string symbol)
    {
        lock (Gate)
        {
            if (!LoadedByName.TryGetValue("LibTorchSharp", out var handle))
                throw new InvalidOperationException("TorchBackend is not initialised");
            return NativeLibrary.GetExport(handle, symbol);
        }
    }

    /// <summary>Seeds every generator torch uses, so CPU runs repeat exactly.</summary>
    public static void Seed(long seed)
    {
        torch.manual_seed(seed);
        if (loaded?.CudaBuild == true && torch.cuda.is_available()) torch.cuda.manual_seed_all(seed);
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        var key = name.StartsWith("lib", StringComparison.Ordinal) ? name[3..] : name;
        if (key.EndsWith(".so", StringComparison.Ordinal)) key = key[..^3];
        return LoadedByName.TryGetValue(key, out var handle) ? handle : IntPtr.Zero;
    }

    private sealed record LibTorchLocation(string Directory, string Source, bool CudaBuild);

    private static LibTorchLocation? FindLibTorch(DeviceRequest request, string? explicitFolder, List<string> tried)
    {
        if (!string.IsNullOrWhiteSpace(explicitFolder))
        {
            var folder = Path.GetFullPath(explicitFolder);
            if (!File.Exists(Path.Combine(folder, "libtorch.so")) && File.Exists(Path.Combine(folder, "lib", "libtorch.so")))
                folder = Path.Combine(folder, "lib");
            if (!File.Exists(Path.Combine(folder, "libtorch.so")))
                throw new LrkException(ErrorCodes.LibTorchNotFound, $"{LibTorchVariable}={explicitFolder} holds no libtorch.so");
            var cuda = File.Exists(Path.Combine(folder, "libtorch_cuda.so"));
            if (request == DeviceRequest.Cuda && !cuda)
                throw new LrkException(ErrorCodes.CudaUnavailable, $"--device cuda: {LibTorchVariable}={explicitFolder} is a CPU-only libtorch (no libtorch_cuda.so)");
            return new LibTorchLocation(folder, LibTorchVariable, cuda);
        }
        tried.Add($"{LibTorchVariable} (not set)");

        var appBase = AppContext.BaseDirectory;
        if (request != DeviceRequest.Cpu)
        {
            foreach (var folder in PackageNativeFolders(appBase, "libtorch-cuda-"))
            {
                if (File.Exists(Path.Combine(folder, "libtorch_cuda.so"))) return new LibTorchLocation(folder, "TorchSharp CUDA package", true);
            }
            tried.Add("TorchSharp CUDA package libtorch-cuda-*-linux-x64 (not referenced)");
            var python = FindPythonTorch(tried);
            if (python is not null && File.Exists(Path.Combine(python, "libtorch_cuda.so")))
                return new LibTorchLocation(python, "PyTorch via python3", true);
            if (python is not null) tried.Add($"PyTorch at {python} (CPU-only build)");
            if (request == DeviceRequest.Cuda) return null;
        }

        foreach (var folder in PackageNativeFolders(appBase, "libtorch-cpu-linux-x64"))
        {
            if (File.Exists(Path.Combine(folder, "libtorch_cpu.so"))) return new LibTorchLocation(folder, "NuGet libtorch-cpu-linux-x64", false);
        }
        tried.Add($"libtorch-cpu-linux-x64 in {appBase} and {LowRankPaths.NuGetPackages} (not found)");
        var pythonCpu = FindPythonTorch(tried);
        return pythonCpu is null ? null : new LibTorchLocation(pythonCpu, "PyTorch via python3", File.Exists(Path.Combine(pythonCpu, "libtorch_cuda.so")));
    }

    /// <summary>Native folders of runtime packages: copied next to the app, or in the NuGet global packages folder.</summary>
    private static IEnumerable<string> PackageNativeFolders(string appBase, string packagePrefix)
    {
        yield return appBase;
        yield return Path.Combine(appBase, "runtimes", "linux-x64", "native");
        var packages = LowRankPaths.NuGetPackages;
        if (!Directory.Exists(packages)) yield break;
        foreach (var package in Directory.EnumerateDirectories(packages, packagePrefix + "*").Order(StringComparer.Ordinal))
        {
            if (!package.EndsWith("linux-x64", StringComparison.Ordinal)) continue;
            foreach (var version in Directory.EnumerateDirectories(package).OrderDescending(StringComparer.Ordinal))
            {
                yield return Path.Combine(version, "runtimes", "linux-x64", "native");
            }
        }
    }

    private static string? pythonTorchCache;
    private static bool pythonProbed;

    private static string? FindPythonTorch(List<string> tried)
    {
        if (pythonProbed) return pythonTorchCache;
        pythonProbed = true;
        try
        {
            // find_spec locates torch without importing it (an import takes seconds).
            var start = new ProcessStartInfo("python3", ["-c",
                "import importlib.util as u, os\ns = u.find_spec('torch')\nprint(os.path.join(list(s.submodule_search_locations)[0], 'lib') if s else '')"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEnd().Trim();
            process.WaitForExit(10_000);
            if (output.Length > 0 && File.Exists(Path.Combine(output, "libtorch.so")))
            {
                pythonTorchCache = output;
                return output;
            }
            tried.Add("python3 -c 'import torch' (no torch installed)");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            tried.Add("python3 (not on PATH)");
        }
        return null;
    }

    private static string FindLibTorchSharp(List<string> tried)
    {
        var assemblyDir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
        var version = typeof(torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0];
        var candidates = new List<string>
        {
            Path.Combine(assemblyDir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"),
            Path.Combine(assemblyDir, "libLibTorchSharp.so"),
            Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"),
            Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so"),
        };
        if (version is not null)
            candidates.Add(Path.Combine(LowRankPaths.NuGetPackages, "torchsharp", version, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"));
        var found = candidates.FirstOrDefault(File.Exists);
        if (found is not null) return found;
        tried.Add("libLibTorchSharp.so in " + string.Join(", ", candidates));
        throw new LrkException(ErrorCodes.NativeLoadFailed, "TorchSharp's native library libLibTorchSharp.so was not found. Looked in: " + string.Join(", ", candidates));
    }

    /// <summary>True when the libstdc++ this process uses defines <paramref name="version"/>.</summary>
    public static bool HostLibStdCxxHas(string version)
    {
        var path = HostLibStdCxxPath();
        if (path is null) return true; // no libstdc++ in the process: nothing to work around, the stock load will say what is wrong
        var needle = Encoding.ASCII.GetBytes(version + "\0");
        return File.ReadAllBytes(path).AsSpan().IndexOf(needle) >= 0;
    }

    public static string? HostLibStdCxxPath()
    {
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            var slash = line.IndexOf('/', StringComparison.Ordinal);
            if (slash >= 0 && line.Contains("libstdc++.so", StringComparison.Ordinal)) return line[slash..].Trim();
        }
        foreach (var candidate in new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6" })
        {
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>Returns the patched copy of libLibTorchSharp.so, making it (and the shim) first if needed.</summary>
    private static string PrepareCompatLibrary(string stockLibrary)
    {
        var stockBytes = File.ReadAllBytes(stockLibrary);
        var folder = Path.Combine(LowRankPaths.NativeCache, Convert.ToHexStringLower(SHA256.HashData(stockBytes))[..16]);
        Directory.CreateDirectory(folder);

        var shim = Path.Combine(folder, "libios_base_library_init.so");
        if (!File.Exists(shim)) BuildShim(shim);
        LoadGlobal(shim);

        var patched = Path.Combine(folder, "libLibTorchSharp.so");
        if (!File.Exists(patched))
        {
            if (ElfVersionNeeds.MarkWeak(stockBytes, RequiredGlibcxx) == 0 &&
                !ElfVersionNeeds.Read(stockBytes).Any(r => r.Version == RequiredGlibcxx))
            {
                return stockLibrary; // this TorchSharp build does not need the fix
            }
            WriteAtomically(patched, stockBytes);
        }
        return patched;
    }

    private static void BuildShim(string target)
    {
        using var stream = typeof(TorchBackend).Assembly.GetManifestResourceStream("ios_base_library_init.cpp")
            ?? throw new LrkException(ErrorCodes.Internal, "embedded shim source is missing");
        var source = target + ".cpp";
        using (var file = File.Create(source)) stream.CopyTo(file);
        var temp = $"{target}.{Environment.ProcessId}.tmp";
        var compiler = Environment.GetEnvironmentVariable("CXX") is { Length: > 0 } cxx ? cxx : "g++";
        string errors;
        int exitCode;
        try
        {
            using var process = Process.Start(new ProcessStartInfo(compiler, ["-shared", "-fPIC", "-O2", "-o", temp, source])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            })!;
            errors = process.StandardError.ReadToEnd();
            process.WaitForExit();
            exitCode = process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new LrkException(ErrorCodes.CompatFixFailed,
                $"this host's libstdc++ lacks {RequiredGlibcxx}, and the compatibility shim needs a C++ compiler: install g++ (apt-get install g++) or set CXX");
        }
        if (exitCode != 0)
            throw new LrkException(ErrorCodes.CompatFixFailed, $"building the libstdc++ compatibility shim with {compiler} failed: {errors.Trim()}");
        File.Move(temp, target, overwrite: true);
    }

    private static void WriteAtomically(string path, byte[] bytes)
    {
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, path, overwrite: true);
    }

    private static IntPtr LoadGlobal(string path)
    {
        var handle = dlopen(path, RtldNow | RtldGlobal);
        if (handle == IntPtr.Zero)
        {
            var error = Marshal.PtrToStringAnsi(dlerror()) ?? "unknown error";
            throw new LrkException(ErrorCodes.NativeLoadFailed, $"cannot load {path}: {error}");
        }
        return handle;
    }

    [DllImport("libc.so.6", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern IntPtr dlopen(string fileName, int flags);

    [DllImport("libc.so.6", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int setenv(string name, string value, int overwrite);

    [DllImport("libc.so.6")]
    private static extern IntPtr dlerror();
}
