using LowRank.Models;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>inspect's grouping and counting on a small LLaMA-layout folder written with the real writer.</summary>
public sealed class ModelInspectorTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public ModelInspectorTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("model.layers.3.self_attn.q_proj.weight", "q_proj")]
    [InlineData("model.layers.3.self_attn.q_proj.bias", "q_proj")]
    [InlineData("model.layers.3.self_attn.q_proj.lowrank_A.weight", "q_proj")]
    [InlineData("model.layers.3.mlp.down_proj.lowrank_B.weight", "down_proj")]
    [InlineData("model.embed_tokens.weight", "embed_tokens")]
    [InlineData("lm_head.weight", "lm_head")]
    [InlineData("transformer.h.0.attn.c_attn.weight", "c_attn")]
    [InlineData("transformer.wpe.weight", "wpe")]
    [InlineData("model.layers.0.7.weight", "layers")]
    [InlineData("weight", "weight")]
    public void Group_is_the_module_type(string tensor, string group) => Assert.Equal(group, ModelInspector.GroupOf(tensor));

    [Fact]
    public void Counts_parameters_per_module_type_dtype_and_file()
    {
        const int hidden = 16, inter = 40, vocab = 50, layers = 3;
        var specs = new List<TensorSpec> { Spec("model.embed_tokens.weight", ScalarType.BFloat16, vocab, hidden) };
        for (var i = 0; i < layers; i++)
        {
            var p = $"model.layers.{i}.";
            specs.Add(Spec(p + "input_layernorm.weight", ScalarType.Float32, hidden));
            if (i == 2)
            {
                // a compressed q_proj: A [out, k] and B [k, in] with k = 4
                specs.Add(Spec(p + "self_attn.q_proj.lowrank_A.weight", ScalarType.BFloat16, hidden, 4));
                specs.Add(Spec(p + "self_attn.q_proj.lowrank_B.weight", ScalarType.BFloat16, 4, hidden));
            }
            else
            {
                specs.Add(Spec(p + "self_attn.q_proj.weight", ScalarType.BFloat16, hidden, hidden));
            }
            specs.Add(Spec(p + "mlp.up_proj.weight", ScalarType.BFloat16, inter, hidden));
        }
        specs.Add(Spec("model.norm.weight", ScalarType.Float32, hidden));
        specs.Add(Spec("lm_head.weight", ScalarType.BFloat16, vocab, hidden));
        SafeTensorsWriter.WriteModel(_temp.Path, specs, maxShardBytes: 2000);
        File.WriteAllText(_temp.File("config.json"), $$"""
            {"architectures": ["LlamaForCausalLM"], "hidden_size": {{hidden}}, "intermediate_size": {{inter}},
             "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": {{layers}}, "vocab_size": {{vocab}}}
            """);

        var r = ModelInspector.Inspect(_temp.Path);
        Assert.Equal("LlamaForCausalLM", r.Architecture);
        Assert.Equal("Llama", r.Family);
        Assert.Equal(2, r.Config!.NumKvHeads);
        Assert.True(r.Sharded);
        var groups = r.Groups.ToDictionary(g => g.Name, g => (g.Tensors, g.Parameters));
        Assert.Equal((1, vocab * hidden), groups["embed_tokens"]);
        Assert.Equal((3, 3L * hidden), groups["input_layernorm"]);
        Assert.Equal((4, 2L * hidden * hidden + 2 * 4 * hidden), groups["q_proj"]);
        Assert.Equal((3, 3L * inter * hidden), groups["up_proj"]);
        Assert.Equal((1, hidden), groups["norm"]);
        Assert.Equal((1, vocab * hidden), groups["lm_head"]);
        Assert.Equal(["embed_tokens", "input_layernorm", "q_proj", "up_proj", "norm", "lm_head"], r.Groups.Select(g => g.Name));
        Assert.Equal(specs.Count, r.TotalTensors);
        Assert.Equal(groups.Values.Sum(g => g.Parameters), r.TotalParameters);

        var f32 = r.Dtypes.Single(d => d.Dtype == "F32");
        Assert.Equal((4, 4L * hidden, 4L * hidden * 4), (f32.Tensors, f32.Parameters, f32.Bytes));
        Assert.Equal(r.TotalParameters - f32.Parameters, r.Dtypes.Single(d => d.Dtype == "BF16").Parameters);
        Assert.True(r.Files.Count > 1);
        Assert.Equal(specs.Count, r.Files.Sum(f => f.Tensors));
        Assert.Equal(r.Files.Sum(f => new FileInfo(Path.Combine(_temp.Path, f.Name)).Length), r.TotalBytes);
        Assert.Equal("pt", r.Metadata["format"]);
        // config.json stands for its folder
        var viaConfig = ModelInspector.Inspect(_temp.File("config.json"));
        Assert.Equal((r.Folder, r.TotalParameters, r.Files.Count), (viaConfig.Folder, viaConfig.TotalParameters, viaConfig.Files.Count));
    }

    [Fact]
    public void Type_names_shared_by_different_parents_are_qualified()
    {
        using (var scope = NewDisposeScope())
        {
            SafeTensorsWriter.Write(_temp.File("model.safetensors"),
            [
                new("transformer.h.0.attn.c_attn.weight", ones(4, 12)),
                new("transformer.h.0.attn.c_proj.weight", ones(4, 4)),
                new("transformer.h.0.attn.c_proj.bias", ones(4)),
                new("transformer.h.0.mlp.c_proj.weight", ones(16, 4)),
                new("transformer.h.1.attn.c_proj.weight", ones(4, 4)),
            ]);
        }
        var r = ModelInspector.Inspect(_temp.Path);
        Assert.Equal(["c_attn", "attn.c_proj", "mlp.c_proj"], r.Groups.Select(g => g.Name));
        Assert.Equal((3, 36L), r.Groups.Where(g => g.Name == "attn.c_proj").Select(g => (g.Tensors, g.Parameters)).Single());
    }

    [Fact]
    public void A_bare_safetensors_file_without_config_is_inspected()
    {
        var path = _temp.File("weights.safetensors");
        using (var scope = NewDisposeScope())
            SafeTensorsWriter.Write(path, [new("encoder.layer.0.dense.weight", ones(3, 5))]);
        var r = ModelInspector.Inspect(path);
        Assert.Null(r.Architecture);
        Assert.Null(r.Config);
        Assert.Equal(15, r.TotalParameters);
        Assert.Equal("dense", Assert.Single(r.Groups).Name);
        Assert.Equal("weights.safetensors", Assert.Single(r.Files).Name);
    }

    private static TensorSpec Spec(string name, ScalarType dtype, params long[] shape) =>
        new(name, dtype, shape, () => randn(shape).to(dtype));
}
