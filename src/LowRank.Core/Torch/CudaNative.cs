using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Torch;

/// <summary>
/// A direct call into the cuBLAS that libtorch has already loaded, for the kernel TorchSharp 0.107 cannot reach:
/// <see cref="HalfGram"/>, a GEMM of fp16/bf16 inputs with an fp32 result on the tensor cores (what
/// <c>torch.mm(..., out_dtype=torch.float32)</c> does in Python). TorchSharp's half matmul returns half (rounded, and the
/// sums of 32k squared activations overflow fp16), and its TF32 matmul of fp32 copies runs at about a third of the speed
/// (<c>bench kernels</c>; BENCHMARKS.md, "Kernels"). The handle uses PyTorch's default (legacy NULL) stream, so it is
/// ordered with torch work.
/// The kernel checks itself against torch on first use; any failure (library not found, wrong result) turns it off for
/// the process with the reason in <see cref="Status"/>, and callers fall back to TF32.
/// <para>Running several cuSOLVER eigendecompositions on separate streams was tried too and measured not to help
/// (BENCHMARKS.md, "Kernels"), so the decompositions stay on
/// torch's <c>linalg.eigh</c>; what does run on a second stream is a whole block's decomposition beside the next
/// block's profiling (<see cref="CudaStreams"/>).</para>
/// </summary>
public static unsafe class CudaNative
{
    private const int CublasOpN = 0;
    private const int CublasOpT = 1;
    private const int CudaR32F = 0;
    private const int CudaR16F = 2;
    private const int CudaR16BF = 14;
    private const int CublasCompute32F = 68;
    private const int CublasGemmDefault = -1;

    private static readonly CudaFeature<Kernel> Feature = new("off (torch kernels used instead): ");

    /// <summary>What is in use, or why not.</summary>
    public static string Status => Feature.Status;

    /// <summary>True when the native kernel loaded and passed its self-test on <paramref name="device"/>.</summary>
    public static bool Available(Device device) => Feature.Available(device, SetUp);

    private static (Kernel, string) SetUp(Device device)
    {
        var api = Api.Resolve();
        Check(api.CudaSetDevice(device.index < 0 ? 0 : device.index), "cudaSetDevice");
        IntPtr handle;
        Check(api.CublasCreate(&handle), "cublasCreate");
        var kernel = new Kernel(api, handle);
        Check(api.CublasSetStream(kernel.Cublas, IntPtr.Zero), "cublasSetStream");
        SelfTest(device, kernel);
        return (kernel, $"cuBLAS GemmEx (half→fp32, {api.Libraries})");
    }

    /// <summary>The resolved functions and the cuBLAS handle the GEMMs run with.</summary>
    private sealed record Kernel(Api Api, IntPtr Cublas);

    /// <summary>Tokens per GEMM of <see cref="HalfGram"/>. The tensor cores' running sums lose low-order bits at every
    /// step, so their error grows with the length of the sum; chunks of
    /// this many tokens, each added into the result by the GEMM epilogue's correctly rounded fp32 β = 1 update, bound it
    /// (BENCHMARKS.md, "chunked Gram").</summary>
    public const int DefaultChunkTokens = 4096;

    /// <summary><c>leftᵀ·right</c> in fp32 for [tokens, n₁] and [tokens, n₂] fp16/bf16 CUDA tensors of one dtype
    /// (products exact, fp32 accumulation on the tensor cores, in chunks of <paramref name="chunkTokens"/> tokens). When
    /// both are the same tensor object the Gram's lower triangle is computed and mirrored (<see cref="SymmetricPanels"/>).</summary>
    public static Tensor HalfGram(Tensor left, Tensor right, int chunkTokens = DefaultChunkTokens) =>
        HalfGram(Feature.Value ?? throw new InvalidOperationException("CudaNative is not available: " + Status), left, right, chunkTokens);

    private static Tensor HalfGram(Kernel kernel, Tensor left, Tensor right, int chunkTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkTokens);
        if (left.dim() != 2 || right.dim() != 2 || left.shape[0] != right.shape[0])
            throw new ArgumentException($"HalfGram needs [t, n₁] and [t, n₂]; got [{string.Join(",", left.shape)}] and [{string.Join(",", right.shape)}]");
        if (left.dtype != right.dtype || left.dtype is not (ScalarType.Float16 or ScalarType.BFloat16))
            throw new ArgumentException($"HalfGram needs two fp16 or two bf16 tensors; got {left.dtype} and {right.dtype}");
        if (left.device.type != DeviceType.CUDA || right.device.type != DeviceType.CUDA)
            throw new ArgumentException("HalfGram runs on CUDA tensors only");
        long tokens = left.shape[0], n1 = left.shape[1], n2 = right.shape[1];
        if (n1 > int.MaxValue / 2 || n2 > int.MaxValue / 2)
            throw new ArgumentException($"HalfGram: {Math.Max(n1, n2)} features exceed 32-bit GEMM sizes");
        using var a = left.contiguous();
        using var b = ReferenceEquals(left, right) ? a.alias() : right.contiguous();
        var result = zeros([n1, n2], ScalarType.Float32, left.device);
        var type = left.dtype == ScalarType.Float16 ? CudaR16F : CudaR16BF;
        var elementSize = a.ElementSize;
        // Slices of tokens, each accumulated into the result by the GEMM's epilogue (β = 1) in fp32: for accuracy
        // (DefaultChunkTokens) and because the 32-bit API bounds each operand's element count.
        var slice = (int)Math.Min(chunkTokens, Math.Max(1, int.MaxValue / Math.Max(n1, n2)));
        // A Gram (one operand) is symmetric: compute its lower triangle in row strips and mirror it (SymmetricPanels).
        var panels = ReferenceEquals(left, right) ? SymmetricPanels(n1) : [(0L, n1)];
        lock (Feature.Gate)
        {
            for (long start = 0; start < tokens; start += slice)
            {
                var count = (int)Math.Min(slice, tokens - start);
                float alpha = 1, beta = start == 0 ? 0 : 1;
                foreach (var (lo, rows) in panels)
                {
                    // Row-major [t, n] is column-major n×t (ld n). The row-major strip R[lo:lo+rows, 0:cols] = L[:, lo:lo+rows]ᵀ·Rt[:, 0:cols]
                    // is, column-major, the cols×rows matrix right_c[0:cols] · left_c[lo:lo+rows]ᵀ at R + lo·n₂ (ld n₂).
                    var cols = panels.Length == 1 ? n2 : lo + rows;
                    Check(kernel.Api.CublasGemmEx(kernel.Cublas, CublasOpN, CublasOpT, (int)cols, (int)rows, count, &alpha,
                        (void*)(DataPointer(b) + (nint)(start * n2 * elementSize)), type, (int)n2,
                        (void*)(DataPointer(a) + (nint)((start * n1 + lo) * elementSize)), type, (int)n1, &beta,
                        (void*)(DataPointer(result) + (nint)(lo * n2 * sizeof(float))), CudaR32F, (int)n2, CublasCompute32F, CublasGemmDefault), "cublasGemmEx");
                }
            }
        }
        // The upper triangle outside the diagonal strips' own squares was never written: copy it from the lower one.
        foreach (var (lo, rows) in panels.Skip(1))
        {
            using var lower = result.narrow(0, lo, rows).narrow(1, 0, lo);
            using var upper = result.narrow(0, 0, lo).narrow(1, lo, rows);
            using var transposed = lower.T;
            upper.copy_(transposed);
        }
        return result;
    }

    /// <summary>
    /// Row strips [lo, lo + rows) of a symmetric n×n product whose lower triangle (each strip against columns 0..lo + rows)
    /// covers it: T strips cost (T + 1)/2T of the full GEMM. Strips narrower than about 1024 rows lose more to smaller
    /// GEMMs than they save (BENCHMARKS.md, "Kernels behind the changes"). Strip starts are multiples of 64 elements, so every operand
    /// pointer keeps the 16-byte alignment of cuBLAS's fast kernels.
    /// </summary>
    internal static (long Lo, long Rows)[] SymmetricPanels(long n)
    {
        var count = Math.Clamp(n / 1024, 1, 8);
        if (count == 1) return [(0, n)];
        var width = (n / count + 63) / 64 * 64;
        var panels = new List<(long, long)>();
        for (long lo = 0; lo < n; lo += width) panels.Add((lo, Math.Min(width, n - lo)));
        return panels.ToArray();
    }

    /// <summary>The total memory of CUDA device <paramref name="device"/> in bytes (cudaMemGetInfo), or null off CUDA or
    /// when the runtime cannot be reached.</summary>
    public static long? TotalMemoryBytes(Device device)
    {
        if (device.type != DeviceType.CUDA) return null;
        try
        {
            var cudart = Api.Library("libcudart.so");
            var setDevice = (delegate* unmanaged<int, int>)Api.Symbol(cudart, "cudaSetDevice");
            var memGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)Api.Symbol(cudart, "cudaMemGetInfo");
            nuint free, total;
            if (setDevice(device.index < 0 ? 0 : device.index) != 0 || memGetInfo(&free, &total) != 0) return null;
            return (long)total;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    private static IntPtr DataPointer(Tensor tensor)
    {
        var pointer = Api.TensorData(tensor.Handle);
        if (pointer == IntPtr.Zero && tensor.NumberOfElements > 0) throw new InvalidOperationException("THSTensor_data returned null");
        return pointer;
    }

    internal static void Check(int code, string call)
    {
        if (code != 0) throw new InvalidOperationException($"{call} returned {code}");
    }

    /// <summary>Compares the kernel with torch on small matrices before anything relies on it.</summary>
    private static void SelfTest(Device device, Kernel kernel)
    {
        using var scope = NewDisposeScope();
        // A private generator: the self-test must not move the global RNG that seeded runs depend on.
        using var generator = new Generator(7, CPU);
        // Odd sizes catch leading-dimension mistakes.
        var x = (randn([333, 70], ScalarType.Float32, generator: generator) * 0.5).to(ScalarType.Float16).to(device);
        var y = (randn([333, 45], ScalarType.Float32, generator: generator) * 0.5).to(ScalarType.Float16).to(device);
        var expected = matmul(x.to(ScalarType.Float64).T, y.to(ScalarType.Float64));
        var got = HalfGram(kernel, x, y, DefaultChunkTokens).to(ScalarType.Float64);
        var error = ((got - expected).norm() / expected.norm()).item<double>();
        if (!(error < 1e-3)) throw new InvalidOperationException($"self-test: GemmEx Gram differs from torch by {error:E2}");
        var xb = x.to(ScalarType.BFloat16);
        var gotB = HalfGram(kernel, xb, xb, DefaultChunkTokens).to(ScalarType.Float64);
        var expectedB = matmul(xb.to(ScalarType.Float64).T, xb.to(ScalarType.Float64));
        var errorB = ((gotB - expectedB).norm() / expectedB.norm()).item<double>();
        if (!(errorB < 1e-3)) throw new InvalidOperationException($"self-test: bf16 GemmEx Gram differs from torch by {errorB:E2}");
        // The symmetric path: 2100 columns make two strips (the second narrower); 5000 tokens end in a partial chunk.
        var wide = (randn([5000, 2100], ScalarType.Float32, generator: generator) * 0.5).to(ScalarType.Float16).to(device);
        var gotW = HalfGram(kernel, wide, wide, chunkTokens: 2048).to(ScalarType.Float64);
        var expectedW = matmul(wide.to(ScalarType.Float64).T, wide.to(ScalarType.Float64));
        var errorW = ((gotW - expectedW).norm() / expectedW.norm()).item<double>();
        var asymmetry = ((gotW - gotW.T).norm() / gotW.norm()).item<double>();
        if (!(errorW < 1e-3) || !(asymmetry < 1e-5))
            throw new InvalidOperationException($"self-test: symmetric GemmEx Gram differs from torch by {errorW:E2} (asymmetry {asymmetry:E2})");

    }

    /// <summary>Function pointers into the libraries, looked up among those already loaded (libtorch's dependencies).</summary>
    internal sealed class Api
    {
        public required string Libraries { get; init; }
        public required delegate* unmanaged<int, int> CudaSetDevice { get; init; }
        public required delegate* unmanaged<IntPtr*, int> CublasCreate { get; init; }
        public required delegate* unmanaged<IntPtr, IntPtr, int> CublasSetStream { get; init; }
        public required delegate* unmanaged<IntPtr, int, int, int, int, int, float*, void*, int, int, void*, int, int, float*, void*, int, int, int, int, int> CublasGemmEx { get; init; }

        private static readonly delegate* unmanaged<IntPtr, IntPtr> ThsTensorData =
            (delegate* unmanaged<IntPtr, IntPtr>)NativeLibraries.LibTorchSharpExport("THSTensor_data");

        /// <summary>TorchSharp's own accessor: <c>tensor->data_ptr()</c>, the device address for a CUDA tensor.</summary>
        public static IntPtr TensorData(IntPtr handle) => ThsTensorData(handle);

        public static Api Resolve()
        {
            var cudart = Library("libcudart.so");
            var cublasLib = Library("libcublas.so");
            return new Api
            {
                Libraries = string.Join(", ", new[] { cudart.Path, cublasLib.Path }.Select(Path.GetFileName)),
                CudaSetDevice = (delegate* unmanaged<int, int>)Symbol(cudart, "cudaSetDevice"),
                CublasCreate = (delegate* unmanaged<IntPtr*, int>)Symbol(cublasLib, "cublasCreate_v2"),
                CublasSetStream = (delegate* unmanaged<IntPtr, IntPtr, int>)Symbol(cublasLib, "cublasSetStream_v2"),
                CublasGemmEx = (delegate* unmanaged<IntPtr, int, int, int, int, int, float*, void*, int, int, void*, int, int, float*, void*, int, int, int, int, int>)Symbol(cublasLib, "cublasGemmEx"),
            };
        }

        /// <summary>The copy of <paramref name="prefix"/> this process already mapped (libtorch_cuda's own), else the
        /// first found next to libtorch or in PyTorch's nvidia/ wheels.</summary>
        internal static (IntPtr Handle, string Path) Library(string prefix)
        {
            var mapped = File.ReadLines("/proc/self/maps")
                .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(parts => parts.Length >= 6)
                .Select(parts => parts[5])
                .FirstOrDefault(path => Path.GetFileName(path).StartsWith(prefix, StringComparison.Ordinal));
            var candidates = new List<string>();
            if (mapped is not null) candidates.Add(mapped);
            if (TorchBackend.Loaded?.LibTorchDirectory is { } libTorch)
            {
                candidates.AddRange(SafeGlob(libTorch, prefix));
                var sitePackages = Path.GetFullPath(Path.Combine(libTorch, "..", ".."));
                var nvidia = Path.Combine(sitePackages, "nvidia");
                if (Directory.Exists(nvidia))
                {
                    foreach (var lib in Directory.EnumerateDirectories(nvidia, "lib", SearchOption.AllDirectories)) candidates.AddRange(SafeGlob(lib, prefix));
                }
            }
            foreach (var path in candidates)
            {
                var handle = NativeLibraries.TryLoadGlobal(path);
                if (handle != IntPtr.Zero) return (handle, path);
            }
            throw new DllNotFoundException($"{prefix}* is neither loaded in this process nor next to libtorch (looked at: {string.Join(", ", candidates.DefaultIfEmpty("nothing"))})");
        }

        private static IEnumerable<string> SafeGlob(string folder, string prefix) =>
            Directory.Exists(folder) ? Directory.EnumerateFiles(folder, prefix + "*").Order(StringComparer.Ordinal) : [];

        internal static IntPtr Symbol((IntPtr Handle, string Path) library, string name)
        {
            var pointer = NativeLibraries.Symbol(library.Handle, name);
            return pointer != IntPtr.Zero ? pointer : throw new EntryPointNotFoundException($"{name} not found in {library.Path}");
        }
    }
}
