using LowRank.Compression;
using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Bench;

/// <summary>One measure on the calibration samples the compression fitted and on held-out samples it did not see
/// (null where no held-out samples were given).</summary>
public sealed record SplitValue(double Calibration, double? HeldOut);

/// <summary>
/// What a compressed block does to the hidden states, against the dense model run on the same tokens.
/// <see cref="Drift"/>: <c>Σ‖h'_l − h_l‖² / Σ‖h_l‖²</c>, the compressed model's hidden state after block l against the
/// dense model's (errors of every block up to l; on the calibration samples this is LC-SVD's reported block output error).
/// <see cref="Local"/>: <c>Σ‖f'_l(h'_{l−1}) − f_l(h'_{l−1})‖² / Σ‖f_l(h'_{l−1}) − h'_{l−1}‖²</c>, what block l's own
/// compression adds on the inputs it really gets, relative to the block's update of the residual stream.
/// </summary>
public sealed record BlockDiagnosis(int Block, SplitValue Drift, SplitValue Local);

/// <summary>
/// One linear's output error in the compressed model (W dense, W' = A B as stored, X' the inputs the compressed model
/// feeds it, X_o the dense model's inputs at the same place): <see cref="OwnInputs"/> <c>‖(W − W')X'‖² / ‖W X'‖²</c>
/// (AdaSVD's default adaComp objective), <see cref="OriginalTarget"/> <c>‖W X_o − W' X'‖² / ‖W X_o‖²</c> (LC-SVD's
/// target: the dense model's output at this place), <see cref="OriginalInputs"/> <c>‖(W − W')X_o‖² / ‖W X_o‖²</c>
/// (SVD-LLM's objective: the inputs it was whitened with).
/// </summary>
public sealed record LinearDiagnosis(string Name, string Kind, int Block, long Rank, bool Dense,
    SplitValue OwnInputs, SplitValue OriginalTarget, SplitValue OriginalInputs);

/// <summary>The whole comparison: per-token mean NLL of both models, mean KL(dense ‖ compressed) per predicted token,
/// and the per-block and per-linear errors.</summary>
public sealed record ModelDiagnosis(
    long CalibrationTokens, long? HeldOutTokens, SplitValue DenseNll, SplitValue Nll, SplitValue Kl,
    IReadOnlyList<BlockDiagnosis> Blocks, IReadOnlyList<LinearDiagnosis> Linears);

/// <summary>
/// Measures where a compression loses: the dense and the compressed model run side by side, block by block, over the
/// calibration samples and over held-out samples; every number is computed from what the two models do on those tokens
/// (per-linear errors from the input Grams <c>H' = X'X'ᵀ</c>, <c>H_o = X_o X_oᵀ</c> and the cross Gram
/// <c>C = X_o X'ᵀ</c>, exact in fp64: e.g. <c>‖W X_o − W'X'‖² = tr(W H_o Wᵀ) − 2 tr(W C W'ᵀ) + tr(W' H' W'ᵀ)</c>).
/// </summary>
public static class CompressionDiagnosis
{
    public static ModelDiagnosis Run(IDecoderModel dense, IDecoderModel compressed, Tensor calibrationIds, Tensor? heldOutIds,
        int batchSize = 8, CancellationToken cancellation = default)
    {
        if (dense.BlockCount != compressed.BlockCount)
            throw new LrkException(ErrorCodes.BadArgument, $"the models differ in depth ({dense.BlockCount} and {compressed.BlockCount} blocks)");
        var calibration = Measure(dense, compressed, calibrationIds, batchSize, cancellation);
        var heldOut = heldOutIds is null ? null : Measure(dense, compressed, heldOutIds, batchSize, cancellation);
        SplitValue Pair(Func<SplitMeasure, double> pick) => new(pick(calibration), heldOut is null ? null : pick(heldOut));
        var blocks = Enumerable.Range(0, dense.BlockCount)
            .Select(b => new BlockDiagnosis(b, Pair(m => m.Drift[b]), Pair(m => m.Local[b]))).ToArray();
        var linears = calibration.Linears.Select((l, i) => new LinearDiagnosis(l.Name, l.Kind, l.Block, l.Rank, l.Dense,
            Pair(m => m.Linears[i].OwnInputs), Pair(m => m.Linears[i].OriginalTarget), Pair(m => m.Linears[i].OriginalInputs))).ToArray();
        return new ModelDiagnosis(calibration.Tokens, heldOut?.Tokens, Pair(m => m.DenseNll), Pair(m => m.Nll), Pair(m => m.Kl), blocks, linears);
    }

    private sealed record LinearErrors(string Name, string Kind, int Block, long Rank, bool Dense, double OwnInputs, double OriginalTarget, double OriginalInputs);

    private sealed record SplitMeasure(long Tokens, double DenseNll, double Nll, double Kl, double[] Drift, double[] Local, LinearErrors[] Linears);

    private static SplitMeasure Measure(IDecoderModel dense, IDecoderModel compressed, Tensor ids, int batchSize, CancellationToken cancellation)
    {
        var blocks = dense.BlockCount;
        var stats = Enumerable.Range(0, blocks).Select(_ => new LinearStatistics(_ => true, precision: GramPrecision.Fp32)).ToArray();
        try
        {
            var drift = new double[blocks, 2];
            var local = new double[blocks, 2];
            double denseNll = 0, nll = 0, kl = 0;
            long tokens = 0;
            var samples = ids.shape[0];
            using var noGrad = no_grad();
            for (long first = 0; first < samples; first += batchSize)
            {
                cancellation.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var batch = ids.narrow(0, first, Math.Min(batchSize, samples - first)).to(dense.Device);
                var h = dense.Embed(batch);
                var hc = compressed.Embed(batch);
                for (var b = 0; b < blocks; b++)
                {
                    using var blockScope = NewDisposeScope();
                    Tensor next, nextCompressed, denseOnCompressed;
                    using (dense.HoldOnDevice(b)) next = dense.RunBlock(b, h, stats[b].Recorder());
                    using (compressed.HoldOnDevice(b)) nextCompressed = compressed.RunBlock(b, hc, stats[b].Observer());
                    using (dense.HoldOnDevice(b)) denseOnCompressed = dense.RunBlock(b, hc);
                    drift[b, 0] += SquaredNorm(nextCompressed - next);
                    drift[b, 1] += SquaredNorm(next);
                    local[b, 0] += SquaredNorm(nextCompressed - denseOnCompressed);
                    local[b, 1] += SquaredNorm(denseOnCompressed - hc);
                    h = next.MoveToOuterDisposeScope();
                    hc = nextCompressed.MoveToOuterDisposeScope();
                }
                var denseLog = nn.functional.log_softmax(dense.Head(h).to(float64), -1);
                var compressedLog = nn.functional.log_softmax(compressed.Head(hc).to(float64), -1);
                var predicted = batch.narrow(1, 1, batch.shape[1] - 1).unsqueeze(-1);
                var denseLogP = denseLog.narrow(1, 0, batch.shape[1] - 1);
                var compressedLogP = compressedLog.narrow(1, 0, batch.shape[1] - 1);
                denseNll -= denseLogP.gather(-1, predicted).sum().item<double>();
                nll -= compressedLogP.gather(-1, predicted).sum().item<double>();
                kl += (denseLogP.exp() * (denseLogP - compressedLogP)).sum().item<double>();
                tokens += predicted.numel();
            }
            var linears = new List<LinearErrors>();
            for (var b = 0; b < blocks; b++)
            {
                var compressedLinears = compressed.BlockLinears(b).ToDictionary(l => l.Name, StringComparer.Ordinal);
                foreach (var linear in dense.BlockLinears(b))
                {
                    using var scope = NewDisposeScope();
                    var other = compressedLinears[linear.Name];
                    var w = (linear.Weight ?? throw new LrkException(ErrorCodes.BadArgument, $"{linear.Name} of the dense model is factorised"))
                        .to(float64, CPU);
                    var wc = other.DenseWeight().to(float64, CPU);
                    var h = stats[b].Gram(linear.Name).to(CPU);
                    var c = stats[b].Cross(linear.Name)!.to(CPU);
                    var t = stats[b].TargetGram(linear.Name)!.to(CPU);
                    var diff = w - wc;
                    var ownInputs = Quadratic(diff, h, diff) / Quadratic(w, h, w);
                    var targetEnergy = Quadratic(w, t, w);
                    var originalTarget = (targetEnergy - 2 * Quadratic(w, c, wc) + Quadratic(wc, h, wc)) / targetEnergy;
                    var originalInputs = Quadratic(diff, t, diff) / targetEnergy;
                    linears.Add(new LinearErrors(linear.Name, linear.Kind, b, other.Rank, !other.IsFactorized, ownInputs, originalTarget, originalInputs));
                }
            }
            return new SplitMeasure(tokens, denseNll / tokens, nll / tokens, kl / tokens,
                Enumerable.Range(0, blocks).Select(b => Ratio(drift[b, 0], drift[b, 1])).ToArray(),
                Enumerable.Range(0, blocks).Select(b => Ratio(local[b, 0], local[b, 1])).ToArray(),
                linears.ToArray());
        }
        finally
        {
            foreach (var s in stats) s.Dispose();
        }
    }

    private static double Ratio(double numerator, double denominator) => denominator > 0 ? numerator / denominator : 0;

    private static double SquaredNorm(Tensor x) => x.to(float64).square().sum().item<double>();

    /// <summary><c>tr(A G Bᵀ)</c> = Σ_t (A x_t)·(B y_t) for <c>G = Σ_t x_t y_tᵀ</c>.</summary>
    private static double Quadratic(Tensor a, Tensor g, Tensor b) => (matmul(a, g) * b).sum().item<double>();
}
