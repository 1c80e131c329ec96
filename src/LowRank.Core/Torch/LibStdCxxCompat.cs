using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace LowRank.Torch;

/// <summary>
/// The libstdc++ compatibility fix. The stock libLibTorchSharp.so requires <c>GLIBCXX_3.4.32</c> (GCC 13) for one
/// symbol, <c>std::ios_base_library_init()</c>; on hosts whose libstdc++ is older it cannot load. Then a copy of it with
/// that version requirement marked weak (<see cref="ElfVersionNeeds"/>) is loaded instead, after a one-function shim
/// that defines the symbol, built from the embedded <c>native/ios_base_library_init.cpp</c> by the host's g++ (or
/// <c>CXX</c>). Both are cached under <see cref="LowRankPaths.NativeCache"/>, in a folder named after the stock
/// library's hash, and written to a temporary name first, so a crash never leaves a half file that looks complete.
/// </summary>
public static class LibStdCxxCompat
{
    /// <summary>The symbol version the stock libLibTorchSharp.so requires of libstdc++.</summary>
    public const string RequiredVersion = "GLIBCXX_3.4.32";

    /// <summary>True when this process's libstdc++ lacks <see cref="RequiredVersion"/>, so the fix must be used.</summary>
    public static bool Needed() => !HostHas(RequiredVersion);

    /// <summary>True when the libstdc++ this process uses defines <paramref name="version"/>.</summary>
    public static bool HostHas(string version)
    {
        var path = HostLibraryPath();
        if (path is null) return true; // no libstdc++ in the process: nothing to work around, the stock load will say what is wrong
        var needle = Encoding.ASCII.GetBytes(version + "\0");
        return File.ReadAllBytes(path).AsSpan().IndexOf(needle) >= 0;
    }

    /// <summary>The libstdc++ mapped into this process, else the first in the usual system folders, else null.</summary>
    public static string? HostLibraryPath()
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

    /// <summary>Loads the shim (building it first if needed) and returns the patched copy of
    /// <paramref name="stockLibrary"/> (writing it first if needed), or the stock library itself when this TorchSharp
    /// build does not require <see cref="RequiredVersion"/>.</summary>
    internal static string PatchedLibTorchSharp(string stockLibrary)
    {
        var stockBytes = File.ReadAllBytes(stockLibrary);
        var folder = Path.Combine(LowRankPaths.NativeCache, Convert.ToHexStringLower(SHA256.HashData(stockBytes))[..16]);
        Directory.CreateDirectory(folder);

        var shim = Path.Combine(folder, "libios_base_library_init.so");
        if (!File.Exists(shim)) BuildShim(shim);
        NativeLibraries.LoadGlobal(shim);

        var patched = Path.Combine(folder, "libLibTorchSharp.so");
        if (!File.Exists(patched))
        {
            if (ElfVersionNeeds.MarkWeak(stockBytes, RequiredVersion) == 0 &&
                !ElfVersionNeeds.Read(stockBytes).Any(r => r.Version == RequiredVersion))
            {
                return stockLibrary; // this TorchSharp build does not need the fix
            }
            WriteAtomically(patched, stockBytes);
        }
        return patched;
    }

    private static void BuildShim(string target)
    {
        using var stream = typeof(LibStdCxxCompat).Assembly.GetManifestResourceStream("ios_base_library_init.cpp")
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
                $"this host's libstdc++ lacks {RequiredVersion}, and the compatibility shim needs a C++ compiler: install g++ (apt-get install g++) or set CXX");
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
}
