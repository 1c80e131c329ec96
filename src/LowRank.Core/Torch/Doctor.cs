using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Torch;

public sealed record DeviceReport(string Type, string Name, long? MemoryBytes, string SelfTest, double? SvdRelErrorFp32, double? SvdRelErrorFp64, string? Error);

public sealed record DoctorReport(
    string Os,
    string DotNet,
    string TorchSharpVersion,
    string? LibTorchVersion,
    string? LibTorchDirectory,
    string? LibTorchSource,
    string? LibTorchSharpPath,
    bool CompatFix,
    string? HostLibStdCxx,
    string RequestedDevice,
    IReadOnlyList<DeviceReport> Devices,
    string SelfTest,
    string? Error);

/// <summary>Environment report and numeric self-test behind <c>dotnet lowrank doctor</c>.</summary>
public static class Doctor
{
    public const int SelfTestSize = 256;
    public const double SelfTestTolerance = 1e-5;

    public static DoctorReport Run(DeviceRequest request, string? libTorch = null)
    {
        var os = OsName();
        var dotnet = RuntimeInformation.FrameworkDescription;
        TorchBackendInfo info;
        try
        {
            info = TorchBackend.Initialize(request, libTorch);
        }
        catch (LrkException e)
        {
            return new DoctorReport(os, dotnet, "unknown", null, null, null, null, false, LibStdCxxCompat.HostLibraryPath(),
                request.ToString().ToLowerInvariant(), [], "fail", $"{e.Code}: {e.Message}");
        }

        var devices = new List<DeviceReport> { Test(DeviceType.CPU, CpuName(), MemoryBytes()) };
        var cudaCount = info.CudaBuild ? (int)cuda.device_count() : 0;
        var gpus = cudaCount > 0 ? NvidiaSmi() : [];
        for (var i = 0; i < cudaCount; i++)
        {
            var (name, memory) = i < gpus.Count ? gpus[i] : ($"cuda:{i}", (long?)null);
            devices.Add(Test(DeviceType.CUDA, name, memory, i));
        }

        string? error = null;
        bool pass;
        switch (request)
        {
            case DeviceRequest.Cpu:
                pass = devices[0].SelfTest == "pass";
                break;
            case DeviceRequest.Cuda:
                pass = cudaCount > 0 && devices.Skip(1).All(d => d.SelfTest == "pass");
                if (cudaCount == 0)
                    error = $"{ErrorCodes.CudaUnavailable}: no CUDA device with the loaded libtorch ({info.LibTorchSource}: {info.LibTorchDirectory}). Tried: {string.Join("; ", info.Tried)}";
                break;
            default:
                pass = devices.All(d => d.SelfTest == "pass");
                break;
        }
        return new DoctorReport(os, dotnet, info.TorchSharpVersion, LibTorchVersion(info.LibTorchDirectory), info.LibTorchDirectory,
            info.LibTorchSource, info.LibTorchSharpPath, info.CompatFix, LibStdCxxCompat.HostLibraryPath(),
            request.ToString().ToLowerInvariant(), devices, pass ? "pass" : "fail", error);
    }

    /// <summary>Relative Frobenius error of U·diag(S)·Vᵀ against a seeded random matrix.</summary>
    public static double SvdReconstructionError(Device device, ScalarType dtype, int size = SelfTestSize, long seed = 1234)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)seed);
        var a = randn([size, size], dtype: float64, generator: generator).to(dtype).to(device);
        var (u, s, vh) = linalg.svd(a, fullMatrices: false);
        var reconstructed = matmul(u * s.unsqueeze(0), vh);
        var error = linalg.norm(reconstructed - a) / linalg.norm(a);
        return error.to(float64).cpu().item<double>();
    }

    private static DeviceReport Test(DeviceType type, string name, long? memory, int index = -1)
    {
        var device = new Device(type, index);
        try
        {
            var e32 = SvdReconstructionError(device, float32);
            var e64 = SvdReconstructionError(device, float64);
            // Pass/fail is judged on fp64, the precision every decomposition in LowRank runs in. fp32 is reported for
            // information only: cuSOLVER's fp32 SVD is far less accurate than a CPU's (BENCHMARKS.md, "doctor"), which is
            // exactly why the compressors do not use it.
            var ok = e64 < SelfTestTolerance && double.IsFinite(e64);
            return new DeviceReport(type == DeviceType.CPU ? "cpu" : $"cuda:{index}", name, memory, ok ? "pass" : "fail", e32, e64, null);
        }
        catch (Exception e)
        {
            return new DeviceReport(type == DeviceType.CPU ? "cpu" : $"cuda:{index}", name, memory, "fail", null, null, e.Message);
        }
    }

    private static string OsName()
    {
        const string osRelease = "/etc/os-release";
        if (File.Exists(osRelease))
        {
            var pretty = File.ReadLines(osRelease).FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal));
            if (pretty is not null) return pretty["PRETTY_NAME=".Length..].Trim('"') + $" ({RuntimeInformation.OSArchitecture})";
        }
        return RuntimeInformation.OSDescription;
    }

    private static string CpuName()
    {
        const string cpuInfo = "/proc/cpuinfo";
        var line = File.Exists(cpuInfo) ? File.ReadLines(cpuInfo).FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) : null;
        var model = line is null ? "cpu" : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        return $"{model} ({Environment.ProcessorCount} logical cores, {torch.get_num_threads()} torch threads)";
    }

    private static long? MemoryBytes()
    {
        const string memInfo = "/proc/meminfo";
        var line = File.Exists(memInfo) ? File.ReadLines(memInfo).FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal)) : null;
        if (line is null) return null;
        var kb = line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        return long.Parse(kb, System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>GPU names and memory; TorchSharp exposes no device properties, nvidia-smi does.</summary>
    private static List<(string Name, long? Memory)> NvidiaSmi()
    {
        var result = new List<(string, long?)>();
        try
        {
            using var process = Process.Start(new ProcessStartInfo("nvidia-smi", ["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            foreach (var line in process.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = line.Split(',');
                long? mib = parts.Length > 1 && long.TryParse(parts[1].Trim(), out var m) ? m * 1024 * 1024 : null;
                result.Add((parts[0].Trim(), mib));
            }
            process.WaitForExit();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // no nvidia-smi: names fall back to cuda:N
        }
        return result;
    }

    private static string? LibTorchVersion(string directory)
    {
        // PyTorch: torch/version.py next to lib/. NuGet: the package version folder.
        var versionPy = Path.Combine(Path.GetDirectoryName(directory) ?? "", "version.py");
        if (File.Exists(versionPy))
        {
            var line = File.ReadLines(versionPy).FirstOrDefault(l => l.StartsWith("__version__", StringComparison.Ordinal));
            if (line is not null) return line.Split('=')[1].Trim().Trim('\'', '"');
        }
        var parts = directory.Split(Path.DirectorySeparatorChar);
        var runtimes = Array.LastIndexOf(parts, "runtimes");
        return runtimes > 0 ? parts[runtimes - 1] : null;
    }
}
