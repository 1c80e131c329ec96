using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// The end-to-end cost of changing one block: the mean KL(original ‖ changed) per predicted token of the model's output
/// distribution, on the first calibration samples, with every other block as the original model has it. This is ASVD's
/// sensitivity measure (Yuan et al., 2023, §3.3: the perplexity change when one layer alone is truncated) at block
/// granularity, with KL in place of perplexity so that it is zero at no change and additive to first order.
/// <para>Use: walk the blocks in order; for block l, install a candidate factorisation, call <see cref="Kl"/>(l), restore
/// the dense weights; then <see cref="Advance"/>(l) moves the held original hidden states past block l. The original
/// model's log-probabilities are computed once (<c>samples × seq × vocab</c> fp32 on the hidden states' storage).</para>
/// </summary>
internal sealed class EndToEndLoss : IDisposable
{
    private readonly CompressionRun run;
    private readonly HiddenStates input;
    private readonly Tensor referenceLogProbs;
    private readonly long[][] batches;
    private int position;

    public EndToEndLoss(CompressionRun run, long samples)
    {
        this.run = run;
        Samples = Math.Min(samples, run.Samples);
        batches = Enumerable.Range(0, (int)Samples).Select(i => (long)i).Chunk(run.Options.BatchSize).ToArray();
        input = run.EmbedCalibration(Samples);
        try
        {
            referenceLogProbs = Forward(0, input, batches, run).DetachFromDisposeScope();
        }
        catch
        {
            input.Dispose();
            throw;
        }
    }

    public long Samples { get; }

    /// <summary>Mean KL(original ‖ current) per predicted token when blocks <paramref name="block"/>… run as the model has
    /// them now, from the original model's hidden states entering <paramref name="block"/>.</summary>
    public double Kl(int block)
    {
        if (block != position) throw new InvalidOperationException($"the held hidden states enter block {position}, not {block}");
        double sum = 0;
        long tokens = 0;
        using var noGrad = no_grad();
        foreach (var indices in batches)
        {
            run.Token.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var current = LogProbs(Run(block, input.Batch(indices, run.Device), run));
            var reference = referenceLogProbs.index_select(0, tensor(indices, device: referenceLogProbs.device)).to(run.Device);
            sum += (reference.exp() * (reference - current)).sum().to(float64).item<double>();
            tokens += current.shape[0] * current.shape[1];
        }
        return sum / tokens;
    }

    /// <summary>Moves the held hidden states through block <paramref name="block"/> as the model has it now (its dense
    /// weights, for a profile of the original model).</summary>
    public void Advance(int block)
    {
        if (block != position) throw new InvalidOperationException($"the held hidden states enter block {position}, not {block}");
        run.Sweep(block, input, input, batches: batches);
        position++;
    }

    private static Tensor Forward(int first, HiddenStates states, long[][] batches, CompressionRun run)
    {
        using var noGrad = no_grad();
        var parts = new List<Tensor>();
        foreach (var indices in batches)
        {
            using var scope = NewDisposeScope();
            parts.Add(LogProbs(Run(first, states.Batch(indices, run.Device), run)).to(states.StorageDevice).MoveToOuterDisposeScope());
        }
        var all = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return all;
    }

    /// <summary>Blocks <paramref name="first"/>… and the head: log-probabilities of the predicted positions, fp32.</summary>
    private static Tensor Run(int first, Tensor hidden, CompressionRun run)
    {
        for (var b = first; b < run.BlockCount; b++)
        {
            using var held = run.Model.HoldOnDevice(b);
            hidden = run.Model.RunBlock(b, hidden);
        }
        var logits = run.Model.Head(hidden);
        return logits.narrow(1, 0, logits.shape[1] - 1);
    }

    private static Tensor LogProbs(Tensor logits) => nn.functional.log_softmax(logits.to(float32), -1);

    public void Dispose()
    {
        input.Dispose();
        referenceLogProbs.Dispose();
    }
}
