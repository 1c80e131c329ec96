using System.Text.Json;
using System.Text.Json.Nodes;

namespace LowRank.Models.Tokenizers;

/// <summary>
/// What <c>tokenizer_config.json</c> (and, as a fallback, config.json's ids) says about special tokens: the BOS/EOS
/// strings, whether BOS is added to every input, and the added tokens. Missing file = all unknown.
/// </summary>
public sealed record TokenizerSettings
{
    public const string FileName = "tokenizer_config.json";

    public string Source { get; init; } = FileName;
    public string? BosToken { get; init; }
    public string? EosToken { get; init; }
    public bool? AddBosToken { get; init; }

    /// <summary>added_tokens_decoder: id → content, special ones only.</summary>
    public IReadOnlyDictionary<string, int> AddedSpecialTokens { get; init; } = new Dictionary<string, int>();

    /// <summary>BOS/EOS ids from config.json, used when the token strings are unknown.</summary>
    public int? ConfigBosId { get; init; }
    public int? ConfigEosId { get; init; }

    public static TokenizerSettings Read(string folder, ModelConfig? config = null)
    {
        var path = Path.Combine(folder, FileName);
        var settings = new TokenizerSettings { ConfigBosId = config?.BosTokenId, ConfigEosId = config?.EosTokenId };
        if (!File.Exists(path)) return settings;
        var root = TokenizerJson.ParseObject(path);
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (root["added_tokens_decoder"] is JsonObject decoder)
        {
            foreach (var (key, value) in decoder)
            {
                if (int.TryParse(key, out var id) && value is JsonObject token && token["special"]?.GetValueKind() == JsonValueKind.True &&
                    token["content"] is JsonValue content && content.TryGetValue<string>(out var text))
                {
                    added[text] = id;
                }
            }
        }
        return settings with
        {
            Source = path,
            BosToken = TokenText(root["bos_token"]),
            EosToken = TokenText(root["eos_token"]),
            AddBosToken = root["add_bos_token"] is JsonValue flag && flag.TryGetValue<bool>(out var add) ? add : null,
            AddedSpecialTokens = added,
        };
    }

    /// <summary>A special token is written either as a string or as an AddedToken object with "content".</summary>
    private static string? TokenText(JsonNode? node) => node switch
    {
        JsonValue value when value.TryGetValue<string>(out var text) => text,
        JsonObject token when token["content"] is JsonValue content && content.TryGetValue<string>(out var text) => text,
        _ => null,
    };

    public int? BosId(IReadOnlyDictionary<string, int> vocabulary) =>
        BosToken is not null && vocabulary.TryGetValue(BosToken, out var id) ? id : ConfigBosId;

    public int? EosId(IReadOnlyDictionary<string, int> vocabulary) =>
        EosToken is not null && vocabulary.TryGetValue(EosToken, out var id) ? id : ConfigEosId;

    /// <summary>Special tokens present in <paramref name="vocabulary"/>: the added ones plus BOS/EOS.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens(IReadOnlyDictionary<string, int> vocabulary)
    {
        var specials = new Dictionary<string, int>(AddedSpecialTokens, StringComparer.Ordinal);
        foreach (var token in new[] { BosToken, EosToken })
        {
            if (token is not null && vocabulary.TryGetValue(token, out var id)) specials[token] = id;
        }
        return specials;
    }
}
