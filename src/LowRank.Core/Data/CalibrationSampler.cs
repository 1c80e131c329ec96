using System.Security.Cryptography;
using System.Text.Json;
using LowRank.Compression;
using LowRank.Models;
using static TorchSharp.torch;

namespace LowRank.Data;

public sealed record CalibrationOptions
{
    /// <summary>Number of samples N (the papers use 256; SVD-LLM and ASVD use 256 × 2048 of WikiText-2 or C4).</summary>
    public int Samples { get; init; } = CompressionDefaults.Samples;

    /// <summary>Tokens per sample L; null → <see cref="CalibrationSampler.DefaultSeqLen"/>.</summary>
    public int? SeqLen { get; init; }

    public int Seed { get; init; } = CompressionDefaults.Seed;

    /// <summary>Overwrite the first token of every sample with BOS (when the tokenizer has one).</summary>
    public bool Bos { get; init; } = true;
}

/// <summary>What an artifact records about the data it was calibrated on: enough to rebuild the exact [N, L] tensor.</summary>
public sealed record CalibrationProtocol
{
    public required string Source { get; init; }
    public required string SourceSha256 { get; init; }
    public required long SourceBytes { get; init; }
    public required TokenProtocolRecord TokenProtocol { get; init; }
    public required long StreamTokens { get; init; }
    public required int Samples { get; init; }
    public required int SeqLen { get; init; }
    public required int Seed { get; init; }
    public required bool Bos { get; init; }
    public int? BosId { get; init; }
    public required string Sampler { get; init; }

    /// <summary>SHA-256 of the sampled ids as little-endian int64, row by row: a check that a rebuild is identical.</summary>
    public required string TokensSha256 { get; init; }

    private static readonly JsonSerializerOptions CanonicalJson = new() { WriteIndented = false };

    /// <summary>SHA-256 of this record's JSON (property order is the declaration order, so it is stable) without
    /// <see cref="Source"/>: the key under which statistics computed from these samples can be cached. The description
    /// holds a path, and the same bytes read from another place are the same calibration data.</summary>
    public string Digest() => Convert.ToHexStringLower(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(this with { Source = "" }, CanonicalJson)));
}

/// <summary>A [N, L] int64 tensor of token ids on the CPU and the protocol that produced it.</summary>
public sealed class CalibrationSet : IDisposable
{
    public CalibrationSet(Tensor tokens, CalibrationProtocol protocol)
    {
        Tokens = tokens;
        Protocol = protocol;
    }

    public Tensor Tokens { get; }
    public CalibrationProtocol Protocol { get; }

    public void Dispose() => Tokens.Dispose();
}

/// <summary>
/// Draws calibration samples the way GPTQ / SVD-LLM do: N windows of L consecutive tokens at random offsets of one
/// token stream. Exact algorithm (the <see cref="CalibrationProtocol.Sampler"/> string names it):
/// <c>rng = new System.Random(seed)</c> (the seeded generator, which .NET keeps identical across versions); for
/// i = 0 … N−1 in order: <c>start = rng.Next(0, n − L + 1)</c>, sample i = stream[start, start + L); then, when BOS is
/// on and the tokenizer has one, sample[i][0] = BOS. Samples may overlap when N·L approaches n.
/// </summary>
public static class CalibrationSampler
{
    public const int DefaultSamples = CompressionDefaults.Samples;
    public const int PaperSeqLen = 2048;
    public const string SamplerName = "random-offsets/v1: System.Random(seed).Next(0, n-L+1) per sample in order; BOS overwrites token 0";

    /// <summary>Calibration tokens N·L at most (the papers use 256 × 2048 = 524,288): every one of them runs through the
    /// model and its hidden states are held, so a count beyond this is a typo, not a calibration set.</summary>
    public const long MaxTokens = 1L << 26;

    /// <summary>The checks on N and L that need no data; run before anything is loaded.</summary>
    public static void Validate(int samples, int? seqLen)
    {
        if (samples < 1) throw new LrkException(ErrorCodes.BadArgument, $"calibration needs at least one sample (got --samples {samples})");
        if (seqLen is < 2) throw new LrkException(ErrorCodes.BadArgument, $"calibration samples need at least 2 tokens (got --seq-len {seqLen})");
        var tokens = (long)samples * (seqLen ?? 2);
        if (tokens > MaxTokens)
            throw new LrkException(ErrorCodes.BadArgument,
                $"--samples {samples}{(seqLen is { } l ? $" × --seq-len {l}" : "")} is {tokens:N0} calibration tokens, more than the {MaxTokens:N0} the calibration can hold (the papers use 256 × 2048)");
    }

    /// <summary>2048 (the papers' length), or the model's context if that is shorter.</summary>
    public static int DefaultSeqLen(ModelConfig config) => Math.Min(PaperSeqLen, config.MaxPositions);

    public static CalibrationSet Sample(TokenizedText stream, SourceText source, CalibrationOptions options)
    {
        var seqLen = options.SeqLen ?? PaperSeqLen;
        Validate(options.Samples, seqLen);
        var tokens = stream.Tokens;
        var n = tokens.Length;
        if (n < seqLen)
            throw new LrkException(ErrorCodes.DataTooShort,
                $"{source.Location} gives {n:N0} tokens under the {stream.Protocol.Name} protocol; a calibration sample of {seqLen:N0} tokens needs at least {seqLen:N0} " +
                $"({options.Samples} × {seqLen} wants about {(long)options.Samples * seqLen:N0} for samples that do not overlap)");

        var bosId = options.Bos ? stream.Protocol.BosId : null;
        var data = new long[(long)options.Samples * seqLen];
        var rng = new Random(options.Seed);
        for (var i = 0; i < options.Samples; i++)
        {
            var start = rng.Next(0, n - seqLen + 1);
            var row = (long)i * seqLen;
            for (var j = 0; j < seqLen; j++) data[row + j] = tokens[start + j];
            if (bosId is { } bos) data[row] = bos;
        }
        var bytes = new byte[data.Length * sizeof(long)];
        Buffer.BlockCopy(data, 0, bytes, 0, bytes.Length);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian hosts are not supported");

        var protocol = new CalibrationProtocol
        {
            Source = source.Description,
            SourceSha256 = source.Sha256,
            SourceBytes = source.Bytes,
            TokenProtocol = stream.Protocol,
            StreamTokens = n,
            Samples = options.Samples,
            SeqLen = seqLen,
            Seed = options.Seed,
            Bos = bosId is not null,
            BosId = bosId,
            Sampler = SamplerName,
            TokensSha256 = Convert.ToHexStringLower(SHA256.HashData(bytes)),
        };
        return new CalibrationSet(tensor(data, [options.Samples, seqLen], dtype: int64).DetachFromDisposeScope(), protocol);
    }
}
