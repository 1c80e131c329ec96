using System.Text.Json.Nodes;
using LowRank.Cache;

namespace LowRank.Tests.Cache;

public class CanonicalJsonTests
{
    [Fact]
    public void Sorts_keys_at_every_depth_and_drops_whitespace()
    {
        var a = JsonNode.Parse("""{ "b": 1, "a": { "z": true, "y": [ 2, "x" ] } }""");
        Assert.Equal("""{"a":{"y":[2,"x"],"z":true},"b":1}""", CanonicalJson.Serialize(a));
    }

    [Fact]
    public void Equal_numbers_written_differently_give_the_same_text()
    {
        var a = CanonicalJson.Serialize(JsonNode.Parse("""{"r":0.50,"n":3.0}"""));
        var b = CanonicalJson.Serialize(JsonNode.Parse("""{"n":3,"r":5e-1}"""));
        Assert.Equal(a, b);
        Assert.Equal("""{"n":3,"r":0.5}""", a);
    }

    [Fact]
    public void Key_hash_ignores_method_case_and_changes_with_every_field()
    {
        CacheKey Make(string method = "AdaSVD", double ratio = 0.5, string source = "sha256:aa", string? calib = "c1", int? samples = 8,
            int? seqLen = 64, long? seed = 1, string dtype = "", string tool = "0.1.0", string[]? args = null, string? formats = null) =>
            CacheKey.Create(method, ratio, source, calib, samples, seqLen, seed, dtype, tool, args, formats is null ? null : ModelFormats.Parse(formats));

        var baseline = Make();
        Assert.Equal(baseline.Hash, Make(method: "adasvd").Hash);
        Assert.Equal(64, baseline.Hash.Length);
        var variants = new[]
        {
            Make(method: "svd"), Make(ratio: 0.4), Make(source: "sha256:ab"), Make(calib: "c2"), Make(calib: null), Make(samples: 16),
            Make(seqLen: 128), Make(seed: 2), Make(dtype: "bfloat16"), Make(tool: "0.1.1"), Make(args: ["--rounds", "2"]),
            Make(formats: "onnx"), Make(formats: "safetensors;onnx"),
        };
        Assert.Equal(variants.Length + 1, variants.Select(v => v.Hash).Append(baseline.Hash).Distinct().Count());
        Assert.Equal(baseline.Hash, CacheKey.Parse(baseline.CanonicalText).Hash);
        // The artifact alone, said or not, keeps the key it had before formats existed; spellings of one set are one key.
        Assert.Equal(baseline.Hash, Make(formats: "SafeTensors").Hash);
        Assert.DoesNotContain("formats", baseline.CanonicalText, StringComparison.Ordinal);
        Assert.Equal(Make(formats: "safetensors;onnx").Hash, Make(formats: "ONNX, safetensors").Hash);
        Assert.DoesNotContain("/", baseline.CanonicalText.Replace("\"sha256:aa\"", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public void Model_formats_parse_any_spelling_and_reject_unknown_ones()
    {
        Assert.Equal(ModelFormats.Default, ModelFormats.Parse(""));
        Assert.Equal("onnx", ModelFormats.Parse(" ONNX ").Canonical);
        Assert.Equal("", ModelFormats.Parse("onnx").OnnxRelativeFolder);
        Assert.Equal("onnx", ModelFormats.Parse("onnx;safetensors").OnnxRelativeFolder);
        Assert.Null(ModelFormats.Parse("safetensors").OnnxRelativeFolder);
        var e = Assert.Throws<LrkException>(() => ModelFormats.Parse("safetensors;gguf"));
        Assert.Equal(ErrorCodes.BadArgument, e.Code);
        Assert.Contains("'gguf'", e.Message, StringComparison.Ordinal);
    }
}
