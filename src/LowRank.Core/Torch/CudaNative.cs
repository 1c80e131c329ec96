using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Torch;

/// <summary>
/// Direct calls into the CUDA libraries that libtorch has already loaded (cuBLAS, cuSOLVER, the CUDA runtime) for
/// the two kernels TorchSharp 0.107 cannot reach:
/// <list type="bullet">
/// <item><see cref="HalfGram"/>: a GEMM of fp16/bf16 inputs with an fp32 result on the tensor cores (what
/// <c>torch.mm(..., out_dtype=torch.float32)</c> does in Python). TorchSharp's half matmul returns half (rounded,
/// and the sums of 32k squared activations overflow fp16), and its TF32 matmul of the fp32 copies runs at a third
/// of the speed (measured on an H200: 32768×11008 Gram 11.3 ms vs 32.5 ms TF32 vs 147 ms fp32 FMA).</item>
/// <item><see cref="EighMany"/>: several fp64 eigendecompositions at once, each on its own stream from its own host
/// thread. cuSOLVER's syevd is bound by the latency of its n sequential Householder steps, not by arithmetic (fp32 is
/// hardly faster than fp64, 92 vs 110 ms at 4096²), so independent decompositions overlap. TorchSharp has no stream
/// API, and one host thread cannot overlap them (syevd synchronises with the host).</item>
/// </list>
/// Everything else stays on PyTorch's default (legacy NULL) stream, which our cuBLAS handle also uses, so ordering
/// with torch work needs no events. Both kernels check themselves against torch on first use; any failure (library
/// not found, wrong result) turns them off for the process with the reason in <see cref="Status"/>, and callers fall
/// back to torch.
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
    private const int EigModeVector = 1;
    private const int FillLower = 0;
    private const uint StreamNonBlocking = 1;
    private const int RtldNow = 0x2;
    private const int RtldGlobal = 0x100;

    /// <summary>Largest matrix <see cref="EighMany"/> takes (syevd's 32-bit workspace size; larger ones go to torch).</summary>
    public const long MaxEighSize = 16384;

    private static readonly object Gate = new();
    private static bool initialised;
    private static string status = "not initialised";
    private static Api? api;
    private static IntPtr cublas;
    private static ConcurrentBag<(IntPtr Solver, IntPtr Stream)> solverSlots = [];
    private static int slotCount;

    /// <summary>How many streams <see cref="EighMany"/> uses at most (also the host threads it blocks).</summary>
    public static int Streams { get; set; } = 8;

    /// <summary>What is in use, or why not.</summary>
    public static string Status
    {
        get
        {
            lock (Gate) return status;
        }
    }

    /// <summary>True when the native kernels loaded and passed their self-test on <paramref name="device"/>.</summary>
    public static bool Available(Device device)
    {
        if (device.type != DeviceType.CUDA) return false;
        lock (Gate)
        {
            if (!initialised)
            {
                initialised = true;
                try
                {
                    api = Api.Resolve();
                    Check(api.CudaSetDevice(device.index < 0 ? 0 : device.index), "cudaSetDevice");
                    IntPtr handle;
                    Check(api.CublasCreate(&handle), "cublasCreate");
                    cublas = handle;
                    Check(api.CublasSetStream(cublas, IntPtr.Zero), "cublasSetStream");
                    SelfTest(device);
                    status = $"cuBLAS GemmEx (half→fp32) and cuSOLVER syevd on up to {Streams} streams ({api.Libraries})";
                }
                catch (Exception e) when (e is LrkException or DllNotFoundException or EntryPointNotFoundException or InvalidOperationException or ExternalException)
                {
                    api = null;
                    status = "off (torch kernels used instead): " + e.Message;
                }
            }
            return api is not null;
        }
    }

    /// <summary><c>leftᵀ·right</c> in fp32 for [tokens, n₁] and [tokens, n₂] fp16/bf16 CUDA tensors of one dtype
    /// (products exact, fp32 accumulation on the tensor cores).</summary>
    public static Tensor HalfGram(Tensor left, Tensor right)
    {
        var native = api ?? throw new InvalidOperationException("CudaNative is not available: " + Status);
        if (left.dim() != 2 || right.dim() != 2 || left.shape[0] != right.shape[0])
            throw new ArgumentException($"HalfGram needs [t, n₁] and [t, n₂]; got [{string.Join(",", left.shape)}] and [{string.Join(",", right.shape)}]");
        if (left.dtype != right.dtype || left.dtype is not (ScalarType.Float16 or ScalarType.BFloat16))
            throw new ArgumentException($"HalfGram needs two fp16 or two bf16 tensors; got {left.dtype} and {right.dtype}");
        if (left.device.type != DeviceType.CUDA || right.device.type != DeviceType.CUDA)
            throw new ArgumentException("HalfGram runs on CUDA tensors only");
        long tokens = left.shape[0], n1 = left.shape[1], n2 = right.shape[1];
        if (tokens > int.MaxValue || n1 > int.MaxValue || n2 > int.MaxValue || tokens * Math.Max(n1, n2) > int.MaxValue)
            throw new ArgumentException("HalfGram: the operands are too large for 32-bit GEMM sizes; split the tokens");
        using var a = left.contiguous();
        using var b = right.contiguous();
        var result = empty([n1, n2], ScalarType.Float32, left.device);
        if (tokens == 0)
        {
            result.zero_();
            return result;
        }
        var type = left.dtype == ScalarType.Float16 ? CudaR16F : CudaR16BF;
        float alpha = 1, beta = 0;
        // Row-major [t, n] is column-major n×t (ld n). The row-major n₁×n₂ result R = Lᵀ·Rt is, column-major,
        // the n₂×n₁ matrix right_c · left_cᵀ.
        lock (Gate)
        {
            Check(native.CublasGemmEx(cublas, CublasOpN, CublasOpT, (int)n2, (int)n1, (int)tokens, &alpha,
                (void*)DataPointer(b), type, (int)n2, (void*)DataPointer(a), type, (int)n1, &beta,
                (void*)DataPointer(result), CudaR32F, (int)n2, CublasCompute32F, CublasGemmDefault), "cublasGemmEx");
        }
        return result;
    }

    /// <summary>
    /// Eigendecompositions of symmetric fp64 CUDA matrices (each n×n, n ≤ <see cref="MaxEighSize"/>), run concurrently:
    /// for each, ascending eigenvalues [n] and the eigenvectors as the COLUMNS of an [n, n] tensor (as torch.linalg.eigh).
    /// The inputs are not modified.
    /// </summary>
    public static (Tensor Values, Tensor Vectors)[] EighMany(IReadOnlyList<Tensor> matrices)
    {
        var native = api ?? throw new InvalidOperationException("CudaNative is not available: " + Status);
        var count = matrices.Count;
        var work = new (Tensor A, Tensor W, Tensor Info, Tensor Workspace, int Lwork)[count];
        try
        {
            for (var i = 0; i < count; i++)
            {
                var m = matrices[i];
                if (m.dim() != 2 || m.shape[0] != m.shape[1] || m.dtype != ScalarType.Float64 || m.device.type != DeviceType.CUDA)
                    throw new ArgumentException($"EighMany needs square fp64 CUDA matrices; got [{string.Join(",", m.shape)}] {m.dtype} on {m.device}");
                if (m.shape[0] > MaxEighSize) throw new ArgumentException($"EighMany takes n ≤ {MaxEighSize}; got {m.shape[0]}");
                var n = (int)m.shape[0];
                // syevd overwrites A with the eigenvectors; a symmetric matrix is its own transpose, so row-major is fine.
                var a = m.contiguous().clone();
                var w = empty([n], ScalarType.Float64, m.device);
                var info = zeros([1], ScalarType.Int32, m.device);
                work[i] = (a, w, info, empty(0), 0);
            }
            // Inputs come from the default stream; the solver streams do not wait on it by themselves.
            cuda.synchronize();
            var slots = AcquireSlots(Math.Min(count, Math.Max(1, Streams)));
            try
            {
                // Workspace sizes first (cheap host calls), then the decompositions, one host thread per stream.
                var slot0 = slots[0];
                for (var i = 0; i < count; i++)
                {
                    int lwork;
                    Check(native.DsyevdBufferSize(slot0.Solver, EigModeVector, FillLower, (int)work[i].A.shape[0],
                        (double*)DataPointer(work[i].A), (int)work[i].A.shape[0], (double*)DataPointer(work[i].W), &lwork), "cusolverDnDsyevd_bufferSize");
                    work[i].Workspace.Dispose();
                    work[i].Workspace = empty([Math.Max(1, lwork)], ScalarType.Float64, work[i].A.device);
                    work[i].Lwork = lwork;
                }
                var next = -1;
                var errors = new ConcurrentQueue<Exception>();
                var device = matrices[0].device.index < 0 ? 0 : matrices[0].device.index;
                var threads = slots.Select(slot => new Thread(() =>
                {
                    try
                    {
                        Check(native.CudaSetDevice(device), "cudaSetDevice");
                        for (var i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
                        {
                            var (a, w, info, workspace, lwork) = work[i];
                            var n = (int)a.shape[0];
                            Check(native.Dsyevd(slot.Solver, EigModeVector, FillLower, n, (double*)DataPointer(a), n, (double*)DataPointer(w),
                                (double*)DataPointer(workspace), lwork, (int*)DataPointer(info)), "cusolverDnDsyevd");
                        }
                        Check(native.CudaStreamSynchronize(slot.Stream), "cudaStreamSynchronize");
                    }
                    catch (Exception e)
                    {
                        errors.Enqueue(e);
                    }
                }) { IsBackground = true, Name = "lowrank-eigh" }).ToArray();
                foreach (var thread in threads) thread.Start();
                foreach (var thread in threads) thread.Join();
                if (!errors.IsEmpty) throw new AggregateException("EighMany failed", errors);
            }
            finally
            {
                foreach (var slot in slots) solverSlots.Add(slot);
            }
            var results = new (Tensor, Tensor)[count];
            for (var i = 0; i < count; i++)
            {
                var failed = work[i].Info.item<int>();
                if (failed != 0)
                    throw new LrkException(ErrorCodes.DecompositionFailed, $"cuSOLVER syevd did not converge (info {failed}) on a {work[i].A.shape[0]}² matrix");
                // Column-major eigenvectors = rows of the row-major view.
                results[i] = (work[i].W, work[i].A.T);
            }
            foreach (var item in work)
            {
                item.Info.Dispose();
                item.Workspace.Dispose();
            }
            return results;
        }
        catch
        {
            foreach (var item in work)
            {
                item.A?.Dispose();
                item.W?.Dispose();
                item.Info?.Dispose();
                item.Workspace?.Dispose();
            }
            throw;
        }
    }

    private static List<(IntPtr Solver, IntPtr Stream)> AcquireSlots(int wanted)
    {
        var native = api!;
        var slots = new List<(IntPtr, IntPtr)>();
        lock (Gate)
        {
            while (slots.Count < wanted && solverSlots.TryTake(out var slot)) slots.Add(slot);
            while (slots.Count < wanted)
            {
                IntPtr stream, solver;
                Check(native.CudaStreamCreateWithFlags(&stream, StreamNonBlocking), "cudaStreamCreateWithFlags");
                Check(native.SolverCreate(&solver), "cusolverDnCreate");
                Check(native.SolverSetStream(solver, stream), "cusolverDnSetStream");
                slots.Add((solver, stream));
                slotCount++;
            }
        }
        return slots;
    }

    private static IntPtr DataPointer(Tensor tensor)
    {
        var pointer = Api.TensorData(tensor.Handle);
        if (pointer == IntPtr.Zero && tensor.NumberOfElements > 0) throw new InvalidOperationException("THSTensor_data returned null");
        return pointer;
    }

    private static void Check(int code, string call)
    {
        if (code != 0) throw new InvalidOperationException($"{call} returned {code}");
    }

    /// <summary>Compares both kernels with torch on small matrices before anything relies on them.</summary>
    private static void SelfTest(Device device)
    {
        using var scope = NewDisposeScope();
        // A private generator: the self-test must not move the global RNG that seeded runs depend on.
        using var generator = new Generator(7, CPU);
        // Odd sizes catch leading-dimension mistakes.
        var x = (randn([333, 70], ScalarType.Float32, generator: generator) * 0.5).to(ScalarType.Float16).to(device);
        var y = (randn([333, 45], ScalarType.Float32, generator: generator) * 0.5).to(ScalarType.Float16).to(device);
        var expected = matmul(x.to(ScalarType.Float64).T, y.to(ScalarType.Float64));
        var got = HalfGram(x, y).to(ScalarType.Float64);
        var error = ((got - expected).norm() / expected.norm()).item<double>();
        if (!(error < 1e-3)) throw new InvalidOperationException($"self-test: GemmEx Gram differs from torch by {error:E2}");
        var xb = x.to(ScalarType.BFloat16);
        var gotB = HalfGram(xb, xb).to(ScalarType.Float64);
        var expectedB = matmul(xb.to(ScalarType.Float64).T, xb.to(ScalarType.Float64));
        var errorB = ((gotB - expectedB).norm() / expectedB.norm()).item<double>();
        if (!(errorB < 1e-3)) throw new InvalidOperationException($"self-test: bf16 GemmEx Gram differs from torch by {errorB:E2}");

        var matrices = new[] { 37L, 64, 5 }.Select(n =>
        {
            var a = randn([n, n], ScalarType.Float64, generator: generator).to(device);
            return matmul(a, a.T) + eye(n, dtype: ScalarType.Float64, device: device);
        }).ToArray();
        var results = EighMany(matrices);
        for (var i = 0; i < matrices.Length; i++)
        {
            var (values, vectors) = results[i];
            var reference = linalg.eigvalsh(matrices[i]);
            var valueError = ((values - reference).abs().max() / reference.abs().max()).item<double>();
            var residual = (matmul(matrices[i], vectors) - vectors * values.unsqueeze(0)).norm().item<double>() / matrices[i].norm().item<double>();
            var orthogonality = (matmul(vectors.T, vectors) - eye(vectors.shape[0], dtype: ScalarType.Float64, device: device)).abs().max().item<double>();
            if (!(valueError < 1e-10 && residual < 1e-10 && orthogonality < 1e-10))
                throw new InvalidOperationException($"self-test: syevd differs from torch (eigenvalues {valueError:E2}, residual {residual:E2}, orthogonality {orthogonality:E2})");
            values.Dispose();
            vectors.Dispose();
        }
    }

    /// <summary>Function pointers into the libraries, looked up among those already loaded (libtorch's dependencies).</summary>
    private sealed class Api
    {
        public required string Libraries { get; init; }
        public required delegate* unmanaged<int, int> CudaSetDevice { get; init; }
        public required delegate* unmanaged<IntPtr*, uint, int> CudaStreamCreateWithFlags { get; init; }
        public required delegate* unmanaged<IntPtr, int> CudaStreamSynchronize { get; init; }
        public required delegate* unmanaged<IntPtr*, int> CublasCreate { get; init; }
        public required delegate* unmanaged<IntPtr, IntPtr, int> CublasSetStream { get; init; }
        public required delegate* unmanaged<IntPtr, int, int, int, int, int, float*, void*, int, int, void*, int, int, float*, void*, int, int, int, int, int> CublasGemmEx { get; init; }
        public required delegate* unmanaged<IntPtr*, int> SolverCreate { get; init; }
        public required delegate* unmanaged<IntPtr, IntPtr, int> SolverSetStream { get; init; }
        public required delegate* unmanaged<IntPtr, int, int, int, double*, int, double*, int*, int> DsyevdBufferSize { get; init; }
        public required delegate* unmanaged<IntPtr, int, int, int, double*, int, double*, double*, int, int*, int> Dsyevd { get; init; }

        private static readonly delegate* unmanaged<IntPtr, IntPtr> ThsTensorData =
            (delegate* unmanaged<IntPtr, IntPtr>)TorchBackend.LibTorchSharpExport("THSTensor_data");

        /// <summary>TorchSharp's own accessor: <c>tensor->data_ptr()</c>, the device address for a CUDA tensor.</summary>
        public static IntPtr TensorData(IntPtr handle) => ThsTensorData(handle);

        public static Api Resolve()
        {
            var cudart = Library("libcudart.so");
            var cublasLib = Library("libcublas.so");
            var cusolver = Library("libcusolver.so");
            return new Api
            {
                Libraries = string.Join(", ", new[] { cudart.Path, cublasLib.Path, cusolver.Path }.Select(Path.GetFileName)),
                CudaSetDevice = (delegate* unmanaged<int, int>)Symbol(cudart, "cudaSetDevice"),
                CudaStreamCreateWithFlags = (delegate* unmanaged<IntPtr*, uint, int>)Symbol(cudart, "cudaStreamCreateWithFlags"),
                CudaStreamSynchronize = (delegate* unmanaged<IntPtr, int>)Symbol(cudart, "cudaStreamSynchronize"),
                CublasCreate = (delegate* unmanaged<IntPtr*, int>)Symbol(cublasLib, "cublasCreate_v2"),
                CublasSetStream = (delegate* unmanaged<IntPtr, IntPtr, int>)Symbol(cublasLib, "cublasSetStream_v2"),
                CublasGemmEx = (delegate* unmanaged<IntPtr, int, int, int, int, int, float*, void*, int, int, void*, int, int, float*, void*, int, int, int, int, int>)Symbol(cublasLib, "cublasGemmEx"),
                SolverCreate = (delegate* unmanaged<IntPtr*, int>)Symbol(cusolver, "cusolverDnCreate"),
                SolverSetStream = (delegate* unmanaged<IntPtr, IntPtr, int>)Symbol(cusolver, "cusolverDnSetStream"),
                DsyevdBufferSize = (delegate* unmanaged<IntPtr, int, int, int, double*, int, double*, int*, int>)Symbol(cusolver, "cusolverDnDsyevd_bufferSize"),
                Dsyevd = (delegate* unmanaged<IntPtr, int, int, int, double*, int, double*, double*, int, int*, int>)Symbol(cusolver, "cusolverDnDsyevd"),
            };
        }

        /// <summary>The copy of <paramref name="prefix"/> this process already mapped (libtorch_cuda's own), else the
        /// first found next to libtorch or in PyTorch's nvidia/ wheels.</summary>
        private static (IntPtr Handle, string Path) Library(string prefix)
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
                var handle = dlopen(path, RtldNow | RtldGlobal);
                if (handle != IntPtr.Zero) return (handle, path);
            }
            throw new DllNotFoundException($"{prefix}* is neither loaded in this process nor next to libtorch (looked at: {string.Join(", ", candidates.DefaultIfEmpty("nothing"))})");
        }

        private static IEnumerable<string> SafeGlob(string folder, string prefix) =>
            Directory.Exists(folder) ? Directory.EnumerateFiles(folder, prefix + "*").Order(StringComparer.Ordinal) : [];

        private static IntPtr Symbol((IntPtr Handle, string Path) library, string name)
        {
            var pointer = dlsym(library.Handle, name);
            return pointer != IntPtr.Zero ? pointer : throw new EntryPointNotFoundException($"{name} not found in {library.Path}");
        }

        [DllImport("libc.so.6", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
        private static extern IntPtr dlopen(string fileName, int flags);

        [DllImport("libc.so.6", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
        private static extern IntPtr dlsym(IntPtr handle, string symbol);
    }
}
