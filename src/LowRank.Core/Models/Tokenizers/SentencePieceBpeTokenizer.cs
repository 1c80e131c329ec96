using System.Globalization;
using System.Text;

namespace LowRank.Models.Tokenizers;

/// <summary>
/// SentencePiece-style BPE from a <c>tokenizer.json</c> (LLaMA-2, Mistral): spaces become '▁', a '▁' is prepended,
/// the whole text is one word; characters missing from the vocabulary fall back to their UTF-8 bytes
/// (&lt;0xAB&gt; tokens); then merges are applied lowest rank first, leftmost on ties (HF tokenizers' BPE
/// <c>merge_all</c>). Microsoft.ML.Tokenizers' BPE has no byte fallback, hence this small implementation.
/// </summary>
public sealed class SentencePieceBpeTokenizer : ITokenizer
{
    public const string Space = "\u2581";

    private readonly Dictionary<string, int> vocabulary;
    private readonly string[] pieces;
    private readonly Dictionary<(int Left, int Right), (int Rank, int Merged)> merges = new();
    private readonly Dictionary<string, int> specials;
    private readonly int?[] byteIds = new int?[256];
    private readonly int? unknownId;
    private readonly bool fuseUnknown;
    private readonly bool dummyPrefix;
    private readonly bool ignoreMerges;

    public SentencePieceBpeTokenizer(IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyDictionary<string, int> specialTokens, TokenizerSettings settings, int? unknownId, bool byteFallback, bool fuseUnknown,
        bool dummyPrefix, bool ignoreMerges)
    {
        this.vocabulary = new Dictionary<string, int>(vocabulary, StringComparer.Ordinal);
        foreach (var (token, id) in specialTokens) this.vocabulary.TryAdd(token, id);
        VocabSize = this.vocabulary.Count == 0 ? 0 : this.vocabulary.Values.Max() + 1;
        pieces = new string[VocabSize];
        foreach (var (token, id) in this.vocabulary) pieces[id] = token;
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!this.vocabulary.TryGetValue(left, out var l) || !this.vocabulary.TryGetValue(right, out var r) || !this.vocabulary.TryGetValue(left + right, out var merged))
                throw new LrkException(ErrorCodes.BadTokenizer, $"{settings.Source}: merge {rank} ('{left}' '{right}') uses tokens missing from the vocabulary");
            this.merges.TryAdd((l, r), (rank, merged));
        }
        if (byteFallback)
        {
            for (var b = 0; b < 256; b++) byteIds[b] = this.vocabulary.TryGetValue($"<0x{b:X2}>", out var id) ? id : null;
        }
        specials = new Dictionary<string, int>(specialTokens, StringComparer.Ordinal);
        this.unknownId = unknownId;
        this.fuseUnknown = fuseUnknown;
        this.dummyPrefix = dummyPrefix;
        this.ignoreMerges = ignoreMerges;
        BosId = settings.BosId(this.vocabulary);
        EosId = settings.EosId(this.vocabulary);
        AddsBosByDefault = settings.AddBosToken ?? BosId is not null;
    }

    public int VocabSize { get; }
    public int? BosId { get; }
    public int? EosId { get; }
    public bool AddsBosByDefault { get; }

    public IReadOnlyList<int> Encode(string text, bool addBos = true, bool addDummyPrefix = true)
    {
        var ids = new List<int>();
        if (addBos && BosId is { } bos) ids.Add(bos);
        foreach (var (segment, specialId) in SplitOnSpecials(text))
        {
            if (specialId is { } id)
            {
                ids.Add(id);
                continue;
            }
            // The HF normalizer (Prepend "▁", Replace " " → "▁") runs on every segment between special tokens.
            var normalized = (dummyPrefix && addDummyPrefix ? Space : "") + segment.Replace(" ", Space, StringComparison.Ordinal);
            EncodeWord(normalized, ids);
        }
        return ids;
    }

    private IEnumerable<(string Text, int? SpecialId)> SplitOnSpecials(string text)
    {
        var start = 0;
        while (start < text.Length)
        {
            var (at, token) = specials.Count == 0 ? (-1, "") : specials.Keys
                .Select(s => (At: text.IndexOf(s, start, StringComparison.Ordinal), Token: s))
                .Where(m => m.At >= 0)
                .OrderBy(m => m.At).ThenByDescending(m => m.Token.Length)
                .FirstOrDefault((-1, ""));
            if (at < 0)
            {
                yield return (text[start..], null);
                yield break;
            }
            if (at > start) yield return (text[start..at], null);
            yield return (token, specials[token]);
            start = at + token.Length;
        }
    }

    private void EncodeWord(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (ignoreMerges && vocabulary.TryGetValue(word, out var whole))
        {
            output.Add(whole);
            return;
        }
        // Symbols: one per character (code point), or its bytes when the character is not a token.
        var symbols = new List<int>();
        foreach (var rune in word.EnumerateRunes())
        {
            var text = rune.ToString();
            if (vocabulary.TryGetValue(text, out var id))
            {
                symbols.Add(id);
                continue;
            }
            var bytes = Encoding.UTF8.GetBytes(text);
            if (bytes.All(b => byteIds[b] is not null))
            {
                symbols.AddRange(bytes.Select(b => byteIds[b]!.Value));
            }
            else if (unknownId is { } unk)
            {
                if (!(fuseUnknown && symbols.Count > 0 && symbols[^1] == unk)) symbols.Add(unk);
            }
            else
            {
                throw new LrkException(ErrorCodes.BadTokenizer, $"character U+{rune.Value:X4} is not in the vocabulary and the tokenizer has neither byte fallback nor an unknown token");
            }
        }

        // Merge lowest rank first (leftmost on ties) with a priority queue over a linked list of symbols.
        var count = symbols.Count;
        var next = Enumerable.Range(1, count).Select(i => i < count ? i : -1).ToArray();
        var previous = Enumerable.Range(-1, count).ToArray();
        var alive = Enumerable.Repeat(true, count).ToArray();
        var queue = new PriorityQueue<(int Position, int Left, int Right), (int Rank, int Position)>();
        void Consider(int position)
        {
            if (position < 0 || next[position] < 0) return;
            var (left, right) = (symbols[position], symbols[next[position]]);
            if (merges.TryGetValue((left, right), out var merge)) queue.Enqueue((position, left, right), (merge.Rank, position));
        }
        for (var i = 0; i < count - 1; i++) Consider(i);
        while (queue.TryDequeue(out var candidate, out _))
        {
            var (position, left, right) = candidate;
            if (!alive[position] || next[position] < 0 || symbols[position] != left || symbols[next[position]] != right) continue;
            var removed = next[position];
            symbols[position] = merges[(left, right)].Merged;
            alive[removed] = false;
            next[position] = next[removed];
            if (next[removed] >= 0) previous[next[removed]] = position;
            Consider(previous[position]);
            Consider(position);
        }
        for (var i = 0; i >= 0 && i < count; i = next[i]) output.Add(symbols[i]);
    }

    public string Decode(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if (id == BosId || id == EosId || specials.ContainsValue(id)) continue;
            bytes.AddRange(PieceBytes(id));
        }
        var text = Encoding.UTF8.GetString([.. bytes]);
        // HF decoder Strip(" ", start 1): the dummy-prefix space is removed once.
        return dummyPrefix && text.StartsWith(' ') ? text[1..] : text;
    }

    public string DecodeToken(int previous, int token)
    {
        var text = Encoding.UTF8.GetString(PieceBytes(token));
        return dummyPrefix && (previous < 0 || previous == BosId) && text.StartsWith(' ') ? text[1..] : text;
    }

    private byte[] PieceBytes(int id)
    {
        if (id < 0 || id >= pieces.Length || pieces[id] is null)
            throw new LrkException(ErrorCodes.BadArgument, $"token id {id} is outside the vocabulary (0..{pieces.Length - 1})");
        var piece = pieces[id];
        if (piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
            byte.TryParse(piece.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var value))
        {
            return [value];
        }
        return Encoding.UTF8.GetBytes(piece.Replace(Space, " ", StringComparison.Ordinal));
    }
}
