using System.Text;
using LowRank.Models.Tokenizers;
using LowRank.Tests.TestSupport;

namespace LowRank.Tests.Models;

/// <summary>
/// The SentencePiece <c>tokenizer.model</c> path (Microsoft.ML.Tokenizers). No such file can be fetched here, so the
/// test writes one: stories260K's tok512 vocabulary is a SentencePiece BPE model (llama2.c exported it from one),
/// re-encoded as a ModelProto, and must tokenize exactly as the llama2.c encoder does.
/// </summary>
public sealed class SentencePieceModelTests
{
    [RequiresPathFact(Stories260K.RelativePath)]
    public void A_sentencepiece_model_of_the_tok512_vocabulary_encodes_like_llama2c()
    {
        var reference = Llama2cTokenizer.Load(Stories260K.Tokenizer);
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File(TokenizerLoader.SentencePieceFileName), ModelProto(reference));
        var tokenizer = TokenizerLoader.LoadRequired(temp.Path);
        Assert.IsType<SentencePieceModelTokenizer>(tokenizer);
        Assert.Equal((512, 1, 2, true), (tokenizer.VocabSize, tokenizer.BosId, tokenizer.EosId, tokenizer.AddsBosByDefault));

        Assert.Equal([1, 403, 407, 261, 378], tokenizer.Encode("Once upon a time"));
        var text = File.ReadAllText(Path.Combine(RepoPaths.Shared, "data", "tinystories_valid_prefix.txt"))[..20_000] + " Héllo 🙂 日本";
        var ids = tokenizer.Encode(text);
        Assert.Equal(reference.Encode(text), ids);
        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.Equal("Once", tokenizer.DecodeToken(1, 403));
        Assert.Equal(" upon", tokenizer.DecodeToken(403, 407));
    }

    /// <summary>sentencepiece_model.proto's ModelProto: pieces (1), trainer_spec (2: BPE with byte fallback), normalizer_spec (3).</summary>
    private static byte[] ModelProto(Llama2cTokenizer vocabulary)
    {
        var model = new MemoryStream();
        for (var id = 0; id < vocabulary.VocabSize; id++)
        {
            var text = id switch { 0 => "<unk>", 1 => "<s>", 2 => "</s>", _ => Encoding.UTF8.GetString(vocabulary.PieceBytes(id)).Replace(' ', '\u2581') };
            var type = id switch { 0 => 2, 1 or 2 => 3, < 259 => 6, _ => 1 }; // UNKNOWN, CONTROL, BYTE, NORMAL
            var piece = new MemoryStream();
            String(piece, 1, text);
            Fixed32(piece, 2, BitConverter.SingleToInt32Bits(vocabulary.Score(id)));
            Varint(piece, 3, type);
            Message(model, 1, piece);
        }
        var trainer = new MemoryStream();
        Varint(trainer, 3, 2); // model_type BPE
        Varint(trainer, 35, 1); // byte_fallback
        Varint(trainer, 40, 0); // unk_id
        Varint(trainer, 41, 1); // bos_id
        Varint(trainer, 42, 2); // eos_id
        Varint(trainer, 43, -1); // pad_id
        Message(model, 2, trainer);
        var normalizer = new MemoryStream();
        String(normalizer, 1, "identity");
        Varint(normalizer, 3, 1); // add_dummy_prefix
        Varint(normalizer, 4, 0); // remove_extra_whitespaces
        Varint(normalizer, 5, 1); // escape_whitespaces
        Message(model, 3, normalizer);
        return model.ToArray();
    }

    private static void Key(Stream stream, int field, int wireType) => RawVarint(stream, (ulong)((field << 3) | wireType));

    private static void RawVarint(Stream stream, ulong value)
    {
        while (value >= 0x80)
        {
            stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        stream.WriteByte((byte)value);
    }

    private static void Varint(Stream stream, int field, long value)
    {
        Key(stream, field, 0);
        RawVarint(stream, unchecked((ulong)value));
    }

    private static void Fixed32(Stream stream, int field, int value)
    {
        Key(stream, field, 5);
        stream.Write(BitConverter.GetBytes(value));
    }

    private static void String(Stream stream, int field, string value)
    {
        Key(stream, field, 2);
        var bytes = Encoding.UTF8.GetBytes(value);
        RawVarint(stream, (ulong)bytes.Length);
        stream.Write(bytes);
    }

    private static void Message(Stream stream, int field, MemoryStream message)
    {
        Key(stream, field, 2);
        RawVarint(stream, (ulong)message.Length);
        stream.Write(message.ToArray());
    }
}
