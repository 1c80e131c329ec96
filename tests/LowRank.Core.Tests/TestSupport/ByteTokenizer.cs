using System.Text;
using LowRank.Models;

namespace LowRank.Tests.TestSupport;

/// <summary>A real, tiny tokenizer for tests: one token per UTF-8 byte (id = byte + 3, as llama2.c's byte fallback),
/// 0 = unk, 1 = BOS, 2 = EOS; the dummy prefix is a leading space.</summary>
public sealed class ByteTokenizer : ITokenizer
{
    public int VocabSize => 259;
    public int? BosId => 1;
    public int? EosId => 2;

    public IReadOnlyList<int> Encode(string text, bool addBos = true, bool addDummyPrefix = true)
    {
        var ids = new List<int>();
        if (addBos) ids.Add(1);
        if (addDummyPrefix && text.Length > 0) ids.Add(' ' + 3);
        ids.AddRange(Encoding.UTF8.GetBytes(text).Select(b => b + 3));
        return ids;
    }

    public string Decode(IEnumerable<int> ids) => Encoding.UTF8.GetString(ids.Where(i => i >= 3).Select(i => (byte)(i - 3)).ToArray());

    public string DecodeToken(int previous, int token) => token >= 3 ? Decode([token]) : "";
}
