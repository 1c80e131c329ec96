using Microsoft.ML.Tokenizers;

namespace LowRank.Models.Tokenizers;

/// <summary>A SentencePiece <c>tokenizer.model</c> (LLaMA-1/2, Mistral), run by Microsoft.ML.Tokenizers.</summary>
public sealed class SentencePieceModelTokenizer : ITokenizer
{
    private readonly SentencePieceTokenizer tokenizer;
    private readonly Dictionary<int, string> pieceById = new();

    private SentencePieceModelTokenizer(SentencePieceTokenizer tokenizer, TokenizerSettings settings)
    {
        this.tokenizer = tokenizer;
        foreach (var (piece, id) in tokenizer.Vocabulary) pieceById.TryAdd(id, piece);
        VocabSize = tokenizer.Vocabulary.Count;
        BosId = tokenizer.BeginningOfSentenceId;
        EosId = tokenizer.EndOfSentenceId;
        AddsBosByDefault = settings.AddBosToken ?? true;
    }

    public static SentencePieceModelTokenizer Load(string path, TokenizerSettings settings)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return new SentencePieceModelTokenizer(SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false), settings);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(ErrorCodes.BadTokenizer, $"cannot read {path}: {e.Message}");
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or NotSupportedException or Google.Protobuf.InvalidProtocolBufferException)
        {
            throw new LrkException(ErrorCodes.BadTokenizer, $"{path} is not a usable SentencePiece model ({e.Message})");
        }
    }

    public int VocabSize { get; }
    public int? BosId { get; }
    public int? EosId { get; }
    public bool AddsBosByDefault { get; }

    /// <summary>The dummy prefix is the model's own setting (normalizer_spec.add_dummy_prefix); <paramref name="addDummyPrefix"/> cannot turn it off.</summary>
    public IReadOnlyList<int> Encode(string text, bool addBos = true, bool addDummyPrefix = true) =>
        tokenizer.EncodeToIds(text, addBeginningOfSentence: addBos, addEndOfSentence: false, considerPreTokenization: true, considerNormalization: true);

    public string Decode(IEnumerable<int> ids) => tokenizer.Decode(ids, considerSpecialTokens: false);

    public string DecodeToken(int previous, int token)
    {
        var text = tokenizer.Decode([token], considerSpecialTokens: false);
        return previous >= 0 && previous != BosId && tokenizer.AddDummyPrefix && pieceById.TryGetValue(token, out var piece) && piece.StartsWith('\u2581') ? " " + text : text;
    }
}
