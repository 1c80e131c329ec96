using static TorchSharp.torch;

namespace LowRank.Data;

/// <summary>
/// Held-out samples of a calibration text: windows of the calibration length drawn from the same token stream that share
/// no token position with any calibration window (nor with each other). They measure what a compression does on text of
/// the calibration distribution that it did not fit — the split used to choose defaults, never the test text.
/// <para>Algorithm: <c>rng = new System.Random(seed)</c> replays the <see cref="CalibrationSampler"/>'s N draws (so the
/// calibration windows are exactly those of <see cref="CalibrationSampler.Sample"/>), then keeps drawing
/// <c>start = rng.Next(0, n − L + 1)</c>, accepting a window only when [start, start + L) overlaps no calibration window
/// and no window accepted before it; BOS overwrites token 0 as for calibration. Fails with
/// <see cref="ErrorCodes.DataTooShort"/> after 1000 draws per wanted sample.</para>
/// </summary>
public static class HeldOutSampler
{
    public const string SamplerName = "held-out/v1: the calibration draws replayed, then further draws of the same System.Random kept when disjoint from every earlier window";

    /// <summary>[count, L] int64 token ids (CPU).</summary>
    public static Tensor Sample(TokenizedText stream, CalibrationOptions calibration, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var seqLen = calibration.SeqLen ?? CalibrationSampler.PaperSeqLen;
        var tokens = stream.Tokens;
        var n = tokens.Length;
        if (n < seqLen)
            throw new LrkException(ErrorCodes.DataTooShort, $"the calibration text gives {n:N0} tokens; a held-out sample needs {seqLen:N0}");
        var rng = new Random(calibration.Seed);
        var taken = new List<int>();
        for (var i = 0; i < calibration.Samples; i++) taken.Add(rng.Next(0, n - seqLen + 1));
        var bosId = calibration.Bos ? stream.Protocol.BosId : null;
        var data = new long[(long)count * seqLen];
        var accepted = 0;
        for (var attempt = 0; accepted < count; attempt++)
        {
            if (attempt >= 1000 * count)
                throw new LrkException(ErrorCodes.DataTooShort,
                    $"found only {accepted} of {count} held-out windows of {seqLen} tokens disjoint from the {calibration.Samples} calibration windows " +
                    $"in {n:N0} tokens: use fewer held-out or calibration samples, or a longer text");
            var start = rng.Next(0, n - seqLen + 1);
            if (taken.Any(s => start < s + seqLen && s < start + seqLen)) continue;
            taken.Add(start);
            var row = (long)accepted * seqLen;
            for (var j = 0; j < seqLen; j++) data[row + j] = tokens[start + j];
            if (bosId is { } bos) data[row] = bos;
            accepted++;
        }
        return tensor(data, [count, seqLen], dtype: int64).DetachFromDisposeScope();
    }
}
