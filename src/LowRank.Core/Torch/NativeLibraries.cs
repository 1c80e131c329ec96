using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;

namespace LowRank.Torch;

/// <summary>
/// Loads native libraries by path with <c>dlopen(RTLD_NOW | RTLD_GLOBAL)</c> and hands libtorch's and TorchSharp's to
/// TorchSharp's <c>DllImport</c>s by name, so the libtorch folder <see cref="LibTorchDiscovery"/> chose is the one used.
/// Global, because each library resolves symbols from those loaded before it (libLibTorchSharp.so from libtorch's, the
/// patched copy's <c>std::ios_base_library_init</c> from <see cref="LibStdCxxCompat"/>'s shim).
/// </summary>
internal static class NativeLibraries
{
    private const int RtldNow = 0x2;
    private const int RtldGlobal = 0x100;
    private const string LibTorchSharp = "LibTorchSharp";

    private static readonly object Gate = new();
    private static readonly Dictionary<string, IntPtr> LoadedByName = new(StringComparer.Ordinal);

    /// <summary>Loads libtorch's libraries from <paramref name="location"/>, dependencies first, then
    /// <paramref name="libTorchSharp"/>, and resolves TorchSharp's imports to them.</summary>
    public static void LoadTorch(LibTorchLocation location, string libTorchSharp)
    {
        lock (Gate)
        {
            foreach (var name in location.CudaBuild
                         ? new[] { "libc10.so", "libc10_cuda.so", "libtorch_cpu.so", "libtorch_cuda.so", "libtorch.so" }
                         : new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" })
            {
                var path = Path.Combine(location.Directory, name);
                if (File.Exists(path)) LoadedByName[Path.GetFileNameWithoutExtension(name)[3..]] = LoadGlobal(path);
            }
            LoadedByName[LibTorchSharp] = LoadGlobal(libTorchSharp);
        }
        NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, Resolve);
    }

    /// <summary>An exported function of the loaded libLibTorchSharp.so (for the few calls TorchSharp does not wrap).</summary>
    public static IntPtr LibTorchSharpExport(string symbol)
    {
        lock (Gate)
        {
            if (!LoadedByName.TryGetValue(LibTorchSharp, out var handle))
                throw new InvalidOperationException("TorchBackend is not initialised");
            return NativeLibrary.GetExport(handle, symbol);
        }
    }

    /// <summary>Loads <paramref name="path"/> with its symbols global; throws LRK with dlerror's reason when it cannot.</summary>
    public static IntPtr LoadGlobal(string path)
    {
        var handle = TryLoadGlobal(path);
        if (handle == IntPtr.Zero)
        {
            var error = Marshal.PtrToStringAnsi(dlerror()) ?? "unknown error";
            throw new LrkException(ErrorCodes.NativeLoadFailed, $"cannot load {path}: {error}");
        }
        return handle;
    }

    /// <summary>Loads <paramref name="path"/> with its symbols global; <see cref="IntPtr.Zero"/> when it cannot.</summary>
    public static IntPtr TryLoadGlobal(string path) => dlopen(path, RtldNow | RtldGlobal);

    /// <summary>The address of <paramref name="symbol"/> in a library <see cref="TryLoadGlobal"/> opened, or zero.</summary>
    public static IntPtr Symbol(IntPtr library, string symbol) => dlsym(library, symbol);

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        var key = name.StartsWith("lib", StringComparison.Ordinal) ? name[3..] : name;
        if (key.EndsWith(".so", StringComparison.Ordinal)) key = key[..^3];
        return LoadedByName.TryGetValue(key, out var handle) ? handle : IntPtr.Zero;
    }

    [DllImport("libc.so.6", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern IntPtr dlopen(string fileName, int flags);

    [DllImport("libc.so.6", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern IntPtr dlsym(IntPtr handle, string symbol);

    [DllImport("libc.so.6")]
    private static extern IntPtr dlerror();
}
