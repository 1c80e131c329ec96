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
            int? seqLen = 64, long? seed = 1, string dtype = "", string tool = "0.1.0", string[]? args = null) =>
            CacheKey.Create(method, ratio, source, calib, samples, seqLen, seed, dtype, tool, args);

        var baseline = Make();
        Assert.Equal(baseline.Hash, Make(method: "adasvd").Hash);
        Assert.Equal(64, baseline.Hash.Length);
        var variants = new[]
        {
            Make(method: "svd"), Make(ratio: 0.4), Make(source: "sha256:ab"), Make(calib: "c2"), Make(calib: null), Make(samples: 16),
            Make(seqLen: 128), Make(seed: 2), Make(dtype: "bfloat16"), Make(tool: "0.1.1"), Make(args: ["--rounds", "2"]),
        };
        Assert.Equal(variants.Length + 1, variants.Select(v => v.Hash).Append(baseline.Hash).Distinct().Count());
        Assert.Equal(baseline.Hash, CacheKey.Parse(baseline.CanonicalText).Hash);
        Assert.DoesNotContain("/", baseline.CanonicalText.Replace("\"sha256:aa\"", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }
}
