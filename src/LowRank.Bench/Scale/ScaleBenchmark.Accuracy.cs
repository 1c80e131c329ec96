using System.Runtime.InteropServices;
using LowRank.Compression;
using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Bench;

/// <summary>The scale benchmark's accuracy check: sampled linears of block 0, their Grams in each precision, and their
/// factorisations compared with an all-fp64 reference.</summary>
public static partial class ScaleBenchmark
{
    /// <summary>One sampled linear: its dense weight, the Grams of its block-0 input in each precision (fp64, host), its rank.</summary>
    private sealed record Probe(string Name, Tensor Weight, Tensor Gram64, Tensor GramPipeline, string PipelinePath, Tensor GramFp32, Tensor GramTf32, long Rank, Device Device) : IDisposable
    {
        public void Dispose()
        {
            Weight.Dispose();
            Gram64.Dispose();
            GramPipeline.Dispose();
            GramFp32.Dispose();
            GramTf32.Dispose();
        }
    }

    private static List<Probe> CaptureProbes(IDecoderModel model, Tensor ids, ScaleBenchmarkOptions options, CompressionOptions compression)
    {
        var probes = new List<Probe>();
        var wanted = model.BlockLinears(0).Where(l => options.AccuracyKinds.Contains(l.Kind)).ToDictionary(l => l.Name, StringComparer.Ordinal);
        if (wanted.Count == 0) return probes;
        var plan = RankPlan.Uniform(model.BlockLinears(0).Select(l => LinearShape.Of(l, 0)).ToArray(), compression.Ratio, compression.RankMultiple);
        using var scope = NewDisposeScope();
        using var held = model.HoldOnDevice(0);
        // One calibration batch by default: the pipeline's per-batch Gram products accumulate over that many tokens, which
        // is what their precision depends on; at least enough tokens for every sampled Gram to be positive definite.
        var widest = wanted.Values.Max(l => l.InFeatures);
        long samples = options.AccuracySamples > 0 ? options.AccuracySamples : compression.BatchSize;
        samples = Math.Min(Math.Max(samples, (widest * 5 / 4 + ids.shape[1] - 1) / ids.shape[1]), ids.shape[0]);
        var hidden = model.Embed(ids.narrow(0, 0, samples).to(model.Device));
        model.RunBlock(0, hidden, (linear, input) =>
        {
            if (!wanted.TryGetValue(linear.Name, out var l)) return;
            using var inner = NewDisposeScope();
            var x = input.reshape(-1, input.shape[^1]);
            var path = LinearStatistics.Resolve(compression.GramPrecision, x.dtype, x.device);
            var pipeline = LinearStatistics.Product(x, x, compression.GramPrecision).to(ScalarType.Float64);
            var fp32 = LinearStatistics.Product(x, x, GramPrecision.Fp32).to(ScalarType.Float64);
            var tf32 = LinearStatistics.Product(x, x, GramPrecision.Tf32).to(ScalarType.Float64);
            // fp64 products of the same (exactly representable) activations, a slice of tokens at a time.
            var gram64 = zeros([x.shape[1], x.shape[1]], ScalarType.Float64, x.device);
            for (long start = 0; start < x.shape[0]; start += 4096)
            {
                using var part = x.narrow(0, start, Math.Min(4096, x.shape[0] - start)).to(ScalarType.Float64);
                gram64.add_(matmul(part.T, part));
            }
            probes.Add(new Probe(l.Name, l.Weight!.to(ScalarType.Float64, CPU).DetachFromDisposeScope(),
                gram64.to(CPU).DetachFromDisposeScope(), pipeline.to(CPU).DetachFromDisposeScope(), path.ToString(),
                fp32.to(CPU).DetachFromDisposeScope(), tf32.to(CPU).DetachFromDisposeScope(), plan[l.Name].Rank, model.Device));
        });
        return probes;
    }

    private static FactorisationAccuracy? Check(Probe probe, SvdAlgorithm algorithm, Action<string> log)
    {
        try
        {
            return Compare(probe, algorithm);
        }
        catch (ExternalException e)
        {
            // The check runs after the measured run; a failure (e.g. out of memory) must not lose its numbers.
            log($"accuracy check of {probe.Name} failed: {e.Message.Split('\n')[0]}");
            return null;
        }
    }

    private static FactorisationAccuracy Compare(Probe probe, SvdAlgorithm algorithm)
    {
        using var scope = NewDisposeScope();
        var device = probe.Device;
        var w = probe.Weight.to(device);
        var h = probe.GramPipeline.to(device);
        var ours = Product(w, h, probe.Rank, algorithm);
        var reference = Product(w, h, probe.Rank, SvdAlgorithm.Direct);
        var allFp64 = Product(w, probe.Gram64.to(device), probe.Rank, SvdAlgorithm.Direct);

        // What a fp32 torch.linalg.svd of the whitened weight (the reference implementation's step) gives.
        using var whitening = Whitening.Cholesky(h, SvdLlm.DefaultWhiteningEpsilon);
        var whitened = whitening.Whiten(w).to(ScalarType.Float32);
        var (u, s, vh) = linalg.svd(whitened, fullMatrices: false);
        var k = (int)probe.Rank;
        var fp32Product = whitening.Unwhiten(matmul(u[.., ..k] * s[..k].unsqueeze(0), vh[..k]).to(ScalarType.Float64));

        var g64 = probe.Gram64.norm().item<double>();
        double GramError(Tensor g) => (g - probe.Gram64).norm().item<double>() / g64;
        return new FactorisationAccuracy(probe.Name, w.shape[0], w.shape[1], probe.Rank, algorithm.ToString(),
            Relative(ours, reference), Relative(fp32Product, reference),
            probe.PipelinePath, GramError(probe.GramPipeline), GramError(probe.GramFp32), GramError(probe.GramTf32),
            Relative(ours, allFp64));
    }

    private static Tensor Product(Tensor w, Tensor h, long rank, SvdAlgorithm algorithm)
    {
        using var factors = SvdLlm.Factorize(w, h, rank, algorithm, SvdLlm.DefaultWhiteningEpsilon, out _);
        return matmul(factors.A.to(ScalarType.Float64), factors.B.to(ScalarType.Float64));
    }

    private static double Relative(Tensor value, Tensor reference) =>
        (value - reference).norm().item<double>() / reference.norm().item<double>();
}
