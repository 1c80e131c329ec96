using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// AdaSVD (Li et al., 2025, "AdaSVD: Adaptive Singular Value Decomposition for Large Language Models").
/// <para><b>adaComp</b> (§3.2, Eq. 7–10): starting from the SVD-LLM truncation <c>W ≈ U Vᵀ</c> whitened with the original
/// model's inputs (the profile SVD-LLM takes), alternately re-fit U and V by least squares to reduce
/// <c>‖W X_t − U Vᵀ X‖_F</c> (X the inputs the compressed model feeds the layer — through the already-compressed
/// blocks and, in the default pipeline, the already-refitted earlier linears of its own block (<see cref="Run"/>) —;
/// X_t the target inputs: X itself by default, or the original model's X_o, <see cref="AdaCompTarget"/>). The truncation is optimal for the
/// inputs it was whitened with; adaComp compensates it for the inputs the compressed model really feeds the layer.
/// We use the exact Gram form of the normal equations, so no token matrix is held:
/// with <c>H = X Xᵀ</c> and <c>C = X_t Xᵀ</c>,
/// <c>U ← W C V (Vᵀ H V)⁺</c> (Eq. 8) and <c>Vᵀ ← U⁺ W C H⁺</c> (Eq. 9), the pseudo-inverses applied as Cholesky solves
/// (<see cref="PsdSolve"/>). With <c>X_t = X</c> and <c>H = L Lᵀ</c> the U-update is the paper's memory-light
/// <c>U = (W L)(Vᵀ L)⁺</c>. Each half-step solves its subproblem exactly, so the objective never increases; with
/// enough rounds it reaches SVD-LLM whitened with H itself (<see cref="AdaCompWhitening.Compressed"/>), the optimum.</para>
/// <para><b>Stack-of-batch</b> (§3.2): the paper shuffles calibration samples and averages them in buckets so more
/// samples fit in memory. The Gram form does not need that (every token is folded into H and C); a bucket size
/// &gt; 1 reproduces the paper's averaged statistics for comparison (see <see cref="CompressionOptions.AdaSvdBucketSize"/>).</para>
/// <para><b>adaCR</b> (§3.3, Eq. 11–12): per-block importance <c>I_l = 1 − cos(h_in, h_out)</c> on calibration data
/// (the published profile: first block most important, last second, a bowl between), normalised by its mean;
/// <c>ρ_l = mrr + I_l·(trr − mrr)</c>, clipped to the feasible range and shifted so the mean is trr exactly.</para>
/// </summary>
public static partial class AdaSvd
{
    public const int DefaultIterations = 1;
    public const double DefaultRetentionGap = 0.05;
    public const double DefaultPinvRtol = 1e-10;
    public const int DefaultImportanceSamples = 64;

    /// <summary>
    /// Pipeline. adaComp fits each layer to the inputs the compressed model really feeds it. With the default options
    /// (<see cref="Propagation.Compressed"/>, target <see cref="AdaCompTarget.Compressed"/>) that is taken literally, group
    /// by group (<see cref="RunSequential"/>); the other combinations run the two-stream pipeline (<see cref="RunStreams"/>).
    /// </summary>
    internal static void Run(CompressionRun run)
    {
        var options = run.Options;
        if (options.EffectivePropagation == Propagation.Compressed && options.AdaSvdTarget == AdaCompTarget.Compressed && run.Model is IStagedDecoder staged)
            RunSequential(run, staged);
        else
            RunStreams(run);
    }
}
