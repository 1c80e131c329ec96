using System.Diagnostics;
using LowRank.Compression;
using LowRank.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Bench;

/// <summary>One timed kernel variant: mean seconds per call and its error against an fp64 reference.</summary>
public sealed record KernelTiming(string Kernel, string Variant, string Shape, double Seconds, double RelativeError);

/// <summary>
/// <c>dotnet lowrank bench kernels</c>: the Gram of one calibration batch (32768 tokens of fp16 activations) on every
/// path (fp32 FMA, TF32, the native tensor-core GEMM: per chunk size, and its symmetric lower-triangle form against the
/// full square) with its error against fp64, and a LLaMA-7B block's seven 4096²
/// fp64 eigendecompositions. Prints what it measured; nothing here decides anything at run time.
/// </summary>
public static class KernelBenchmark
{
    public static IReadOnlyList<KernelTiming> Run(Device device, long tokens = 32768, int eighCount = 7, long eighSize = 4096, Action<string>? log = null)
    {
        log ??= _ => { };
        var results = new List<KernelTiming>();
        var native = CudaNative.Available(device);
        log(device.type == DeviceType.CUDA ? $"native kernels: {CudaNative.Status}" : "cpu: torch kernels only");
        using var generator = new Generator(11, CPU);
        foreach (var n in new long[] { 4096, 11008 })
        {
            using var scope = NewDisposeScope();
            // Activation-like: per-channel scales spread over two decades.
            var scales = rand([n], generator: generator) * 3 + 0.03;
            var x = (randn([tokens, n], generator: generator) * scales).to(ScalarType.Float16).to(device);
            var reference = zeros([n, n], ScalarType.Float64, device);
            for (long start = 0; start < tokens; start += 4096)
            {
                using var part = x.narrow(0, start, Math.Min(4096, tokens - start)).to(ScalarType.Float64);
                reference.add_(matmul(part.T, part));
            }
            var shape = $"[{tokens}, {n}]ᵀ·[{tokens}, {n}]";
            foreach (var precision in new[] { GramPrecision.Fp32, GramPrecision.Tf32, GramPrecision.TensorCores })
            {
                if (precision == GramPrecision.TensorCores && !native) continue;
                if (device.type != DeviceType.CUDA && precision != GramPrecision.Fp32) continue;
                var product = LinearStatistics.Product(x, x, precision);
                var error = ((product.to(ScalarType.Float64) - reference).norm() / reference.norm()).item<double>();
                var seconds = Time(device, () => LinearStatistics.Product(x, x, precision).Dispose());
                results.Add(new KernelTiming("gram", precision.ToString(), shape, seconds, error));
                log($"gram {precision,-12} {shape}: {seconds * 1e3:F2} ms, error vs fp64 {error:E2}");
            }
            if (!native) continue;
            // The tensor cores' error grows with the tokens summed per GEMM; the pipeline uses DefaultChunkTokens.
            foreach (var chunk in new[] { 32768, 8192, 4096, 2048, 1024 })
            {
                var product = CudaNative.HalfGram(x, x, chunk);
                var error = ((product.to(ScalarType.Float64) - reference).norm() / reference.norm()).item<double>();
                var seconds = Time(device, () => CudaNative.HalfGram(x, x, chunk).Dispose());
                results.Add(new KernelTiming("gram", $"TensorCores, {chunk} tokens per GEMM", shape, seconds, error));
                log($"gram tensor cores, chunks of {chunk,5} {shape}: {seconds * 1e3:F2} ms, error vs fp64 {error:E2}");
            }
            // The pipeline's Grams take the symmetric path (lower-triangle strips, CudaNative.SymmetricPanels); a second
            // handle on the same data takes the full-square GEMM, for comparison.
            using (var same = x.alias())
            {
                var full = CudaNative.HalfGram(x, same);
                var error = ((full.to(ScalarType.Float64) - reference).norm() / reference.norm()).item<double>();
                var seconds = Time(device, () => CudaNative.HalfGram(x, same).Dispose());
                results.Add(new KernelTiming("gram", $"TensorCores, {CudaNative.DefaultChunkTokens} tokens per GEMM, full square (no symmetry)", shape, seconds, error));
                log($"gram tensor cores, full square {shape}: {seconds * 1e3:F2} ms, error vs fp64 {error:E2}");
            }
        }

        using (var scope = NewDisposeScope())
        {
            var matrices = Enumerable.Range(0, eighCount).Select(_ =>
            {
                var a = randn([eighSize, eighSize], ScalarType.Float64, generator: generator).to(device);
                return (matmul(a, a.T) / eighSize).MoveToOuterDisposeScope();
            }).ToArray();
            var shape = $"{eighCount} × {eighSize}² fp64";
            var sequential = Time(device, () =>
            {
                foreach (var m in matrices)
                {
                    var (values, vectors) = linalg.eigh(m);
                    values.Dispose();
                    vectors.Dispose();
                }
            }, repeats: 2);
            results.Add(new KernelTiming("eigh", "torch linalg.eigh, one after another", shape, sequential, 0));
            log($"eigh {shape}: {sequential:F3} s");
        }
        return results;
    }

    private static double Time(Device device, Action action, int repeats = 3)
    {
        action();
        Sync(device);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < repeats; i++) action();
        Sync(device);
        return clock.Elapsed.TotalSeconds / repeats;
    }

    private static void Sync(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }
}
