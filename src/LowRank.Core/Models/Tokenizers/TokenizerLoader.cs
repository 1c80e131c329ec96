namespace LowRank.Models.Tokenizers;

/// <summary>
/// Picks a model folder's tokenizer by the files present, first match wins:
/// <c>tokenizer.bin</c> (llama2.c), <c>tokenizer.json</c> (HF BPE: byte-level or SentencePiece-style),
/// <c>tokenizer.model</c> (SentencePiece, through Microsoft.ML.Tokenizers), <c>vocab.json</c> + <c>merges.txt</c> (GPT-2 BPE).
/// </summary>
public static class TokenizerLoader
{
    public const string SentencePieceFileName = "tokenizer.model";
    public const string VocabFileName = "vocab.json";
    public const string MergesFileName = "merges.txt";

    /// <summary>The folder's tokenizer, or null when it has none of the files above.</summary>
    public static ITokenizer? Load(string folder, ModelConfig? config = null)
    {
        string In(string name) => Path.Combine(folder, name);
        // A FIFO or device under a tokenizer's name would block the read or never end.
        foreach (var name in new[] { Llama2cTokenizer.FileName, TokenizerSettings.FileName, TokenizerJson.FileName, SentencePieceFileName, VocabFileName, MergesFileName })
            IO.RegularFile.Require(In(name), ErrorCodes.BadTokenizer, "tokenizer files");
        if (File.Exists(In(Llama2cTokenizer.FileName))) return Llama2cTokenizer.Load(In(Llama2cTokenizer.FileName));
        var settings = TokenizerSettings.Read(folder, config);
        if (File.Exists(In(TokenizerJson.FileName))) return TokenizerJson.Load(In(TokenizerJson.FileName), settings);
        if (File.Exists(In(SentencePieceFileName))) return SentencePieceModelTokenizer.Load(In(SentencePieceFileName), settings);
        if (File.Exists(In(VocabFileName)) && File.Exists(In(MergesFileName)))
            return ByteLevelBpeTokenizer.FromVocabAndMerges(In(VocabFileName), In(MergesFileName), settings);
        return null;
    }

    /// <summary>Like <see cref="Load"/>, but a folder without a tokenizer is an error.</summary>
    public static ITokenizer LoadRequired(string folder, ModelConfig? config = null) =>
        Load(folder, config) ?? throw new LrkException(ErrorCodes.BadTokenizer,
            $"{folder} has no tokenizer (looked for {Llama2cTokenizer.FileName}, {TokenizerJson.FileName}, {SentencePieceFileName}, {VocabFileName} + {MergesFileName})");
}
