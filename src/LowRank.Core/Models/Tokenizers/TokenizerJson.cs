using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank.Models.Tokenizers;

/// <summary>
/// Reads an HF <c>tokenizer.json</c> whose model is BPE and builds the matching tokenizer: byte-level BPE
/// (a ByteLevel pre-tokenizer, optionally after a Split regex: GPT-2, LLaMA-3, Qwen2) or SentencePiece-style BPE
/// (▁ for spaces, byte fallback: LLaMA-2, Mistral). Other models (WordPiece, Unigram) are refused by name.
/// </summary>
public static class TokenizerJson
{
    public const string FileName = "tokenizer.json";

    public static ITokenizer Load(string path, TokenizerSettings settings)
    {
        try
        {
            return LoadCore(path, settings);
        }
        catch (InvalidOperationException e)
        {
            // JsonNode's typed reads (GetValue<string>() on a number, …): a field of the wrong JSON type.
            throw Bad(path, $"has a value of the wrong JSON type ({e.Message})");
        }
    }

    private static ITokenizer LoadCore(string path, TokenizerSettings settings)
    {
        var root = ParseObject(path);
        var model = root["model"] as JsonObject ?? throw Bad(path, "has no 'model' object");
        var type = model["type"]?.GetValue<string>();
        if (type != "BPE") throw new LrkException(ErrorCodes.BadTokenizer, $"{path}: tokenizer model '{type}' is not supported (supported: BPE)");
        if (model["vocab"] is not JsonObject vocabNode) throw Bad(path, "has no model.vocab object");
        var vocabulary = Vocabulary(vocabNode, path);
        var merges = Merges(model["merges"], path);

        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (root["added_tokens"] is JsonArray addedTokens)
        {
            foreach (var token in addedTokens.OfType<JsonObject>())
            {
                if (token["special"]?.GetValueKind() != JsonValueKind.True || token["content"]?.GetValue<string>() is not { } content) continue;
                if (token["id"] is not JsonValue id || !id.TryGetValue<int>(out var number) || number < 0)
                    throw Bad(path, $"added token '{content}' has no non-negative integer id");
                added[content] = number;
            }
        }
        var all = new Dictionary<string, int>(vocabulary, StringComparer.Ordinal);
        foreach (var (content, id) in added) all[content] = id;
        var specials = new Dictionary<string, int>(settings.SpecialTokens(all), StringComparer.Ordinal);
        foreach (var (content, id) in added) specials[content] = id;

        // LLaMA-3 style files add BOS through the post-processor rather than tokenizer_config's add_bos_token.
        if (settings.AddBosToken is null && TemplateStartsWithSpecialToken(root["post_processor"]) is { } template && all.ContainsKey(template))
            settings = settings with { AddBosToken = true, BosToken = settings.BosToken ?? template };

        var preTokenizers = Flatten(root["pre_tokenizer"], "pretokenizers");
        var normalizers = Flatten(root["normalizer"], "normalizers");
        var byteLevel = preTokenizers.FirstOrDefault(p => Type(p) == "ByteLevel");
        if (byteLevel is not null)
        {
            var split = preTokenizers.FirstOrDefault(p => Type(p) == "Split");
            var pattern = split?["pattern"]?["Regex"]?.GetValue<string>()
                ?? (byteLevel["use_regex"]?.GetValueKind() == JsonValueKind.False ? @"(?s).+" : ByteLevelBpeTokenizer.Gpt2Pattern);
            if (split is not null && split["behavior"]?.GetValue<string>() is { } behavior && behavior != "Isolated")
                throw new LrkException(ErrorCodes.BadTokenizer, $"{path}: Split behavior '{behavior}' is not supported (supported: Isolated)");
            NormalizationForm? form = null;
            foreach (var normalizer in normalizers)
            {
                form = Type(normalizer) switch
                {
                    "NFC" => NormalizationForm.FormC,
                    "NFKC" => NormalizationForm.FormKC,
                    var other => throw new LrkException(ErrorCodes.BadTokenizer, $"{path}: normalizer '{other}' is not supported with a byte-level BPE"),
                };
            }
            var prefixSpace = byteLevel["add_prefix_space"]?.GetValueKind() == JsonValueKind.True;
            return new ByteLevelBpeTokenizer(vocabulary, merges.Select(m => m.Left + " " + m.Right), pattern, specials,
                settings with { Source = path }, prefixSpace, form);
        }

        var metaspace = preTokenizers.FirstOrDefault(p => Type(p) == "Metaspace");
        var prepends = normalizers.Any(n => Type(n) == "Prepend" && n["prepend"]?.GetValue<string>() == SentencePieceBpeTokenizer.Space);
        var replacesSpaces = normalizers.Any(n => Type(n) == "Replace" && n["content"]?.GetValue<string>() == SentencePieceBpeTokenizer.Space);
        if (metaspace is null && !replacesSpaces)
            throw new LrkException(ErrorCodes.BadTokenizer, $"{path}: a BPE tokenizer that is neither byte-level nor SentencePiece-style (▁ for spaces) is not supported");
        var dummyPrefix = prepends || metaspace is not null && metaspace["prepend_scheme"]?.GetValue<string>() is null or "always" or "first"
            && metaspace["add_prefix_space"]?.GetValueKind() != JsonValueKind.False;
        var unk = model["unk_token"]?.GetValue<string>() is { } unkToken && all.TryGetValue(unkToken, out var unkId) ? unkId : (int?)null;
        return new SentencePieceBpeTokenizer(vocabulary, merges, specials, settings with { Source = path }, unk,
            byteFallback: model["byte_fallback"]?.GetValueKind() == JsonValueKind.True,
            fuseUnknown: model["fuse_unk"]?.GetValueKind() == JsonValueKind.True,
            dummyPrefix: dummyPrefix,
            ignoreMerges: model["ignore_merges"]?.GetValueKind() == JsonValueKind.True);
    }

    /// <summary>The special token a TemplateProcessing post-processor puts first in a single sequence, if any.</summary>
    private static string? TemplateStartsWithSpecialToken(JsonNode? postProcessor)
    {
        var template = Flatten(postProcessor, "processors").FirstOrDefault(p => Type(p) == "TemplateProcessing");
        return template?["single"] is JsonArray { Count: > 0 } single && single[0]?["SpecialToken"]?["id"] is JsonValue id && id.TryGetValue<string>(out var token)
            ? token
            : null;
    }

    private static string? Type(JsonObject node) => node["type"]?.GetValue<string>();

    /// <summary>A normalizer/pre-tokenizer, or the members of a "Sequence" of them.</summary>
    private static List<JsonObject> Flatten(JsonNode? node, string membersKey) => node switch
    {
        JsonObject sequence when sequence["type"]?.GetValue<string>() == "Sequence" && sequence[membersKey] is JsonArray members =>
            members.OfType<JsonObject>().ToList(),
        JsonObject single => [single],
        _ => [],
    };

    private static Dictionary<string, int> Vocabulary(JsonObject node, string path)
    {
        var vocabulary = new Dictionary<string, int>(node.Count, StringComparer.Ordinal);
        foreach (var (token, id) in node)
        {
            if (id is not JsonValue value || !value.TryGetValue<int>(out var number) || number < 0)
                throw Bad(path, $"vocabulary entry '{token}' has no non-negative integer id");
            vocabulary[token] = number;
        }
        return vocabulary;
    }

    /// <summary>Merges as "a b" strings (tokenizers &lt; 0.20) or as [a, b] pairs (newer).</summary>
    private static List<(string Left, string Right)> Merges(JsonNode? node, string path)
    {
        if (node is not JsonArray array) throw Bad(path, "has no model.merges list");
        var merges = new List<(string, string)>(array.Count);
        foreach (var merge in array)
        {
            switch (merge)
            {
                case JsonValue value when value.TryGetValue<string>(out var text) && text.Split(' ') is [var left, var right]:
                    merges.Add((left, right));
                    break;
                case JsonArray { Count: 2 } pair when pair[0]?.GetValue<string>() is { } left && pair[1]?.GetValue<string>() is { } right:
                    merges.Add((left, right));
                    break;
                default:
                    throw Bad(path, $"merge {merges.Count} ({merge?.ToJsonString()}) is not a pair of tokens");
            }
        }
        return merges;
    }

    public static Dictionary<string, int> ReadVocabulary(string vocabJson) => Vocabulary(ParseObject(vocabJson), vocabJson);

    public static JsonObject ParseObject(string path)
    {
        try
        {
            // Strict UTF-8, and every string decodable (no lone surrogate), before any key is looked up.
            var text = IO.StrictUtf8.ReadAllText(path, ErrorCodes.BadTokenizer);
            IO.JsonTextCheck.Check(text, path, ErrorCodes.BadTokenizer);
            return JsonNode.Parse(text) as JsonObject ?? throw Bad(path, "is not a JSON object");
        }
        catch (JsonException e)
        {
            throw Bad(path, $"is not valid JSON ({e.Message})");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(ErrorCodes.BadTokenizer, $"cannot read {path}: {e.Message}");
        }
    }

    private static LrkException Bad(string path, string why) => new(ErrorCodes.BadTokenizer, $"{path} {why}");
}
