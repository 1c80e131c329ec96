namespace LowRank.Models;

/// <summary>A model's tokenizer, whatever its file format (SentencePiece model, tokenizer.json, GPT-2 vocab/merges,
/// llama2.c tokenizer.bin).</summary>
public interface ITokenizer
{
    int VocabSize { get; }
    int? BosId { get; }
    int? EosId { get; }

    /// <summary>Whether the model expects BOS in front of a prompt (tokenizer_config add_bos_token: true for LLaMA
    /// and OPT, false for GPT-2).</summary>
    bool AddsBosByDefault => BosId is not null;

    /// <summary>Encodes text. <paramref name="addBos"/> prepends BOS; <paramref name="addDummyPrefix"/> applies the
    /// SentencePiece/llama2.c dummy-prefix space (ignored by byte-level BPE tokenizers, which have none).</summary>
    IReadOnlyList<int> Encode(string text, bool addBos = true, bool addDummyPrefix = true);

    string Decode(IEnumerable<int> ids);

    /// <summary>The text of one token as it would be printed after <paramref name="previous"/> (llama2.c's decode rule
    /// strips the leading space after BOS); used for streaming generation.</summary>
    string DecodeToken(int previous, int token);
}
