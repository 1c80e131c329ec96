using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace LowRank.Models.Tokenizers;

/// <summary>
/// Byte-level BPE (GPT-2, OPT, LLaMA-3, Qwen2): text is split by a regex, each piece's UTF-8 bytes are mapped to
/// printable characters (space → 'Ġ') and merged by rank. The encoding itself is Microsoft.ML.Tokenizers'
/// <see cref="BpeTokenizer"/> with <see cref="BpeOptions.ByteLevel"/> and a <see cref="RegexPreTokenizer"/>;
/// this class adds the model's BOS/EOS conventions and the input normalisation tokenizer.json asks for.
/// </summary>
public sealed partial class ByteLevelBpeTokenizer : ITokenizer
{
    /// <summary>GPT-2's pre-tokenizer (HF ByteLevel with use_regex).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly BpeTokenizer bpe;
    private readonly HashSet<int> specialIds;
    private readonly bool addPrefixSpace;
    private readonly NormalizationForm? normalization;

    public ByteLevelBpeTokenizer(
        IReadOnlyDictionary<string, int> vocabulary,
        IEnumerable<string> merges,
        string pattern,
        IReadOnlyDictionary<string, int> specialTokens,
        TokenizerSettings settings,
        bool addPrefixSpace = false,
        NormalizationForm? normalization = null)
    {
        var all = new Dictionary<string, int>(vocabulary, StringComparer.Ordinal);
        foreach (var (token, id) in specialTokens) all[token] = id;
        var specials = specialTokens.Count > 0 ? new Dictionary<string, int>(specialTokens, StringComparer.Ordinal) : null;
        Regex regex;
        try
        {
            regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new LrkException(ErrorCodes.BadTokenizer, $"{settings.Source}: the pre-tokenizer pattern is not a valid regular expression ({e.Message})");
        }
        try
        {
            bpe = BpeTokenizer.Create(new BpeOptions(all)
            {
                Merges = merges,
                ByteLevel = true,
                PreTokenizer = new RegexPreTokenizer(regex, specials),
                SpecialTokens = specials,
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new LrkException(ErrorCodes.BadTokenizer, $"{settings.Source}: the BPE vocabulary or merges are invalid ({e.Message})");
        }
        VocabSize = all.Count == 0 ? 0 : all.Values.Max() + 1;
        specialIds = [.. specialTokens.Values];
        BosId = settings.BosId(all);
        EosId = settings.EosId(all);
        AddsBosByDefault = settings.AddBosToken ?? false;
        this.addPrefixSpace = addPrefixSpace;
        this.normalization = normalization;
    }

    public int VocabSize { get; }
    public int? BosId { get; }
    public int? EosId { get; }
    public bool AddsBosByDefault { get; }

    /// <summary>GPT-2 style files: <c>vocab.json</c> (token → id) and <c>merges.txt</c> ("a b" per line, optional "#version" header).</summary>
    public static ByteLevelBpeTokenizer FromVocabAndMerges(string vocabJson, string mergesTxt, TokenizerSettings settings)
    {
        var vocabulary = TokenizerJson.ReadVocabulary(vocabJson);
        List<string> merges;
        try
        {
            merges = IO.StrictUtf8.ReadAllText(mergesTxt, ErrorCodes.BadTokenizer).Split('\n').Select(line => line.TrimEnd('\r'))
                .Where(line => line.Length > 0 && !line.StartsWith("#version", StringComparison.Ordinal)).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(ErrorCodes.BadTokenizer, $"cannot read {mergesTxt}: {e.Message}");
        }
        if (merges.FirstOrDefault(m => m.Split(' ').Length != 2) is { } bad)
            throw new LrkException(ErrorCodes.BadTokenizer, $"{mergesTxt}: merge '{bad}' is not two tokens separated by one space");
        var specials = settings.SpecialTokens(vocabulary);
        return new ByteLevelBpeTokenizer(vocabulary, merges, Gpt2Pattern, specials, settings);
    }

    public IReadOnlyList<int> Encode(string text, bool addBos = true, bool addDummyPrefix = true)
    {
        if (normalization is { } form) text = text.Normalize(form);
        if (addPrefixSpace && text.Length > 0 && !char.IsWhiteSpace(text[0])) text = " " + text;
        var ids = bpe.EncodeToIds(text);
        if (!addBos || BosId is not { } bos) return ids;
        var withBos = new List<int>(ids.Count + 1) { bos };
        withBos.AddRange(ids);
        return withBos;
    }

    public string Decode(IEnumerable<int> ids) => bpe.Decode(ids.Where(id => !specialIds.Contains(id) && id != BosId && id != EosId));

    public string DecodeToken(int previous, int token) => Decode([token]);
}
