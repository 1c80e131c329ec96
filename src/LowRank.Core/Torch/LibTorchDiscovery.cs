using System.Diagnostics;
using System.Reflection;
using TorchSharp;

namespace LowRank.Torch;

/// <summary>
/// Finds the libtorch folder to load and TorchSharp's native library (libLibTorchSharp.so) that binds to it.
/// <para>libtorch search order, first hit wins:</para>
/// <list type="number">
/// <item><c>LOWRANK_LIBTORCH</c> (or the <c>libTorch</c> argument): a folder holding libtorch.so.</item>
/// <item>CUDA requested or auto: a referenced TorchSharp CUDA runtime package (<c>libtorch-cuda-*</c>) next to the app or in the NuGet folder.</item>
/// <item>CUDA requested or auto: a PyTorch installation with CUDA found through <c>python3</c>.</item>
/// <item>CPU: <c>libtorch-cpu-linux-x64</c> next to the app or in the NuGet package folder (restored with this repo).</item>
/// <item>CPU: any PyTorch installation found through <c>python3</c>.</item>
/// </list>
/// Every rule that did not hit adds a line to <c>tried</c>, which the errors and <c>doctor</c> show.
/// </summary>
internal static class LibTorchDiscovery
{
    private static string? pythonTorchCache;
    private static bool pythonProbed;

    /// <summary>The libtorch folder for <paramref name="request"/> by the search order above; throws LRK with every
    /// place tried, and how to get one, when none is found.</summary>
    public static LibTorchLocation FindLibTorch(DeviceRequest request, string? explicitFolder, List<string> tried) =>
        Search(request, explicitFolder, tried)
        ?? throw new LrkException(request == DeviceRequest.Cuda ? ErrorCodes.CudaUnavailable : ErrorCodes.LibTorchNotFound,
            (request == DeviceRequest.Cuda ? "no CUDA libtorch found" : "no libtorch found") +
            ". Tried: " + string.Join("; ", tried) +
            $". Get one of: {TorchBackend.LibTorchVariable}=<a folder holding libtorch.so> (any libtorch 2.10, e.g. PyTorch's torch/lib); " +
            "PyTorch for python3 (pip install torch); or the NuGet package libtorch-cpu-linux-x64 2.10.0 in the NuGet packages folder " +
            "('bash eng/setup.sh' in a LowRank checkout, or 'dotnet restore' of any project referencing it).");

    /// <summary>The stock libLibTorchSharp.so of the referenced TorchSharp: next to its assembly, next to the app, or in
    /// the NuGet package folder.</summary>
    public static string FindLibTorchSharp(List<string> tried)
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

    private static LibTorchLocation? Search(DeviceRequest request, string? explicitFolder, List<string> tried)
    {
        if (!string.IsNullOrWhiteSpace(explicitFolder))
        {
            var folder = Path.GetFullPath(explicitFolder);
            if (!File.Exists(Path.Combine(folder, "libtorch.so")) && File.Exists(Path.Combine(folder, "lib", "libtorch.so")))
                folder = Path.Combine(folder, "lib");
            if (!File.Exists(Path.Combine(folder, "libtorch.so")))
                throw new LrkException(ErrorCodes.LibTorchNotFound, $"{TorchBackend.LibTorchVariable}={explicitFolder} holds no libtorch.so");
            var cuda = File.Exists(Path.Combine(folder, "libtorch_cuda.so"));
            if (request == DeviceRequest.Cuda && !cuda)
                throw new LrkException(ErrorCodes.CudaUnavailable, $"--device cuda: {TorchBackend.LibTorchVariable}={explicitFolder} is a CPU-only libtorch (no libtorch_cuda.so)");
            return new LibTorchLocation(folder, TorchBackend.LibTorchVariable, cuda);
        }
        tried.Add($"{TorchBackend.LibTorchVariable} (not set)");

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

    /// <summary>PyTorch's torch/lib folder as python3 reports it, probed once per process.</summary>
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
}
