using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace LowRank.Models.Tokenizers;

/// <summary>
/// llama2.c's <c>tokenizer.bin</c>: int32 max_token_length, then per token float32 score, int32 length, bytes.
/// Id 0 is &lt;unk&gt;, 1 BOS, 2 EOS, 3..258 the byte fallbacks &lt;0x00&gt;..&lt;0xFF&gt;. Encoding follows run.c's
/// <c>encode</c>: a dummy-prefix space, UTF-8 code points looked up whole (bytes as fallback), then repeatedly
/// merge the adjacent pair whose concatenation is the highest-scoring token (leftmost on ties).
/// </summary>
public sealed class Llama2cTokenizer : ITokenizer
{
    public const string FileName = "tokenizer.bin";
    private const int ByteFallbackOffset = 3;

    // Token texts as Latin-1 strings: one char per byte, so lookups compare bytes exactly.
    private readonly string[] pieces;
    private readonly float[] scores;
    private readonly Dictionary<string, int> idByPiece = new(StringComparer.Ordinal);

    private Llama2cTokenizer(string[] pieces, float[] scores, int maxTokenLength)
    {
        this.pieces = pieces;
        this.scores = scores;
        MaxTokenLength = maxTokenLength;
        for (var id = 0; id < pieces.Length; id++) idByPiece.TryAdd(pieces[id], id);
    }

    public int VocabSize => pieces.Length;
    public int? BosId => 1;
    public int? EosId => 2;
    public int MaxTokenLength { get; }

    public static Llama2cTokenizer Load(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(ErrorCodes.BadTokenizer, $"cannot read llama2.c tokenizer {path}: {e.Message}");
        }
        return Parse(bytes, path);
    }

    public static Llama2cTokenizer Parse(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.Length < 4) throw Bad(source, "the file is shorter than its 4-byte header");
        var maxTokenLength = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) throw Bad(source, $"max_token_length {maxTokenLength} is out of range");
        var pieces = new List<string>();
        var scores = new List<float>();
        var offset = 4;
        while (offset < bytes.Length)
        {
            if (bytes.Length - offset < 8) throw Bad(source, $"token {pieces.Count} is truncated at byte {offset}");
            var score = BinaryPrimitives.ReadSingleLittleEndian(bytes[offset..]);
            var length = BinaryPrimitives.ReadInt32LittleEndian(bytes[(offset + 4)..]);
            offset += 8;
            if (length < 0 || length > bytes.Length - offset) throw Bad(source, $"token {pieces.Count} has length {length}, past the end of the file");
            if (!float.IsFinite(score)) throw Bad(source, $"token {pieces.Count} has a non-finite score");
            pieces.Add(Encoding.Latin1.GetString(bytes.Slice(offset, length)));
            scores.Add(score);
            offset += length;
        }
        if (pieces.Count < ByteFallbackOffset + 256) throw Bad(source, $"{pieces.Count} tokens; a llama2.c vocabulary has at least 259 (<unk>, BOS, EOS, 256 bytes)");
        for (var b = 0; b < 256; b++)
        {
            if (pieces[b + ByteFallbackOffset] != $"<0x{b:X2}>")
                throw Bad(source, $"token {b + ByteFallbackOffset} is '{pieces[b + ByteFallbackOffset]}', expected the byte fallback <0x{b:X2}>");
        }
        return new Llama2cTokenizer([.. pieces], [.. scores], maxTokenLength);
    }

    private static LrkException Bad(string source, string why) => new(ErrorCodes.BadTokenizer, $"{source} is not a llama2.c tokenizer.bin: {why}");

    /// <summary>The raw bytes of token <paramref name="id"/> as stored (byte tokens read "&lt;0xAB&gt;").</summary>
    public byte[] PieceBytes(int id) => Encoding.Latin1.GetBytes(pieces[id]);

    public float Score(int id) => scores[id];

    public IReadOnlyList<int> Encode(string text, bool addBos = true, bool addDummyPrefix = true)
    {
        var tokens = new List<int>();
        if (addBos) tokens.Add(BosId!.Value);
        if (text.Length == 0) return tokens;

        var utf8 = Encoding.UTF8.GetBytes(addDummyPrefix ? " " + text : text);
        var start = tokens.Count;
        var i = 0;
        while (i < utf8.Length)
        {
            // One code point: a lead byte and up to three continuation bytes (run.c caps the run at four bytes).
            var length = 1;
            while (i + length < utf8.Length && (utf8[i + length] & 0xC0) == 0x80 && length < 4) length++;
            var piece = Encoding.Latin1.GetString(utf8, i, length);
            if (idByPiece.TryGetValue(piece, out var id)) tokens.Add(id);
            else for (var j = 0; j < length; j++) tokens.Add(utf8[i + j] + ByteFallbackOffset);
            i += length;
        }
        Merge(tokens, start);
        return tokens;
    }

    /// <summary>
    /// Greedy BPE by score: merge the best adjacent pair until no pair forms a token. run.c rescans the whole
    /// sequence per merge; a priority queue over (score, position) picks the same pair (highest score, leftmost
    /// on ties, since merging keeps the order of positions) in O(n log n).
    /// </summary>
    private void Merge(List<int> tokens, int start)
    {
        var symbols = tokens.GetRange(start, tokens.Count - start);
        var count = symbols.Count;
        var next = Enumerable.Range(1, count).Select(i => i < count ? i : -1).ToArray();
        var previous = Enumerable.Range(-1, count).ToArray();
        var alive = Enumerable.Repeat(true, count).ToArray();
        var queue = new PriorityQueue<(int Position, int Left, int Right, int Merged), (float NegativeScore, int Position)>();
        void Consider(int position)
        {
            if (position < 0 || next[position] < 0) return;
            var (left, right) = (symbols[position], symbols[next[position]]);
            var merged = PairId(left, right);
            // run.c starts from a best score of -1e10: a merge must score above it.
            if (merged >= 0 && scores[merged] > -1e10f) queue.Enqueue((position, left, right, merged), (-scores[merged], position));
        }
        for (var i = 0; i < count - 1; i++) Consider(i);
        while (queue.TryDequeue(out var candidate, out _))
        {
            var (position, left, right, merged) = candidate;
            if (!alive[position] || next[position] < 0 || symbols[position] != left || symbols[next[position]] != right) continue;
            var removed = next[position];
            symbols[position] = merged;
            alive[removed] = false;
            next[position] = next[removed];
            if (next[removed] >= 0) previous[next[removed]] = position;
            Consider(previous[position]);
            Consider(position);
        }
        tokens.RemoveRange(start, count);
        for (var i = 0; i >= 0 && i < count; i = next[i]) tokens.Add(symbols[i]);
    }

    private int PairId(int left, int right) => idByPiece.TryGetValue(pieces[left] + pieces[right], out var id) ? id : -1;

    public string Decode(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        var previous = -1;
        foreach (var id in ids)
        {
            if (id != BosId && id != EosId) bytes.AddRange(TokenBytes(previous, id));
            previous = id;
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }

    public string DecodeToken(int previous, int token) => Encoding.UTF8.GetString(TokenBytes(previous, token));

    /// <summary>run.c's decode: strip the leading space after BOS; "&lt;0xAB&gt;" is the raw byte 0xAB.</summary>
    private byte[] TokenBytes(int previous, int token)
    {
        if (token < 0 || token >= pieces.Length) throw new LrkException(ErrorCodes.BadArgument, $"token id {token} is outside the vocabulary (0..{pieces.Length - 1})");
        var piece = pieces[token];
        if (previous == BosId && piece.StartsWith(' ')) piece = piece[1..];
        if (piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
            byte.TryParse(piece.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var value))
        {
            return [value];
        }
        return Encoding.Latin1.GetBytes(piece);
    }
}
