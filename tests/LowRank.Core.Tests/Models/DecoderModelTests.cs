using LowRank.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>The per-block API the compressors use, loading errors, numerics options and generation, on the committed
/// parity fixtures and self-trained models (no ../shared needed).</summary>
public sealed class DecoderModelTests
{
    public DecoderModelTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private static LoadedModel Load(string folder, ScalarType dtype = ScalarType.Float32) =>
        ModelLoader.Load(folder, new ModelLoadOptions { Device = DeviceRequest.Cpu, ComputeDtype = dtype });

    private static Tensor Ids(params long[] ids) => tensor(ids, [1, ids.Length], ScalarType.Int64);

    [Theory]
    [InlineData("llama", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")]
    [InlineData("qwen2", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")]
    [InlineData("opt", "q_proj,k_proj,v_proj,out_proj,fc1,fc2")]
    [InlineData("gpt2", "attn.c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj")]
    public void Observer_sees_each_linear_input_in_execution_order(string name, string kinds)
    {
        using var loaded = Load(ParityFixtures.Folder(name));
        var model = loaded.Model;
        using var scope = NewDisposeScope();
        var hidden = model.Embed(Ids(1, 5, 9, 13, 17, 21));
        for (var block = 0; block < model.BlockCount; block++)
        {
            var seen = new List<(LinearWeight Linear, long[] Shape)>();
            var before = hidden;
            hidden = model.RunBlock(block, hidden, (linear, input) => seen.Add((linear, input.shape)));
            Assert.Equal(kinds.Split(','), seen.Select(s => s.Linear.Kind));
            Assert.Equal(model.BlockLinears(block), seen.Select(s => s.Linear));
            Assert.All(seen, s => Assert.Equal([1L, 6L, s.Linear.InFeatures], s.Shape));
            Assert.All(seen, s => Assert.StartsWith(name == "gpt2" ? $"transformer.h.{block}." : name == "opt" ? $"model.decoder.layers.{block}." : $"model.layers.{block}.", s.Linear.Name));
            // Running a block without an observer gives the same result.
            Assert.Equal(0f, (model.RunBlock(block, before) - hidden).abs().max().item<float>());
        }
        var viaBlocks = model.Head(hidden);
        Assert.Equal(0f, (viaBlocks - model.Logits(Ids(1, 5, 9, 13, 17, 21))).abs().max().item<float>());
    }

    [Theory]
    [MemberData(nameof(ParityFixtures.All), MemberType = typeof(ParityFixtures))]
    public void Every_checkpoint_tensor_is_a_block_linear_or_an_other_tensor(string name)
    {
        using var loaded = Load(ParityFixtures.Folder(name));
        using var store = TensorStore.Open(loaded.Folder);
        var model = (DecoderModel)loaded.Model;
        var linearTensors = Enumerable.Range(0, model.BlockCount).SelectMany(model.BlockLinears)
            .SelectMany(l => l.Bias is null ? new[] { l.Name + ".weight" } : [l.Name + ".weight", l.Name + ".bias"]).ToHashSet();
        Assert.Empty(model.UnusedTensors);
        Assert.Empty(model.OtherTensors.Keys.Intersect(linearTensors));
        Assert.Equal(store.Names.Order(StringComparer.Ordinal), model.OtherTensors.Keys.Concat(linearTensors).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_missing_or_misshapen_tensor_is_named_in_the_error()
    {
        using var store = TensorStore.Open(ParityFixtures.Folder("llama"));
        var config = ModelConfigReader.Read(ParityFixtures.Folder("llama"));
        const string missing = "model.layers.1.mlp.up_proj.weight";
        var without = new WeightSource(store.Names.Where(n => n != missing), n => store.Load(n));
        var error = Assert.Throws<LrkException>(() => ModelLoader.Create(config, without));
        Assert.Equal(ErrorCodes.MissingTensor, error.Code);
        Assert.Contains("model.layers.1.mlp.up_proj", error.Message, StringComparison.Ordinal);

        const string reshaped = "model.layers.0.self_attn.k_proj.weight";
        var wrong = new WeightSource(store.Names, n => n == reshaped ? store.Load(n).reshape(16, -1) : store.Load(n));
        var shape = Assert.Throws<LrkException>(() => ModelLoader.Create(config, wrong));
        Assert.Equal(ErrorCodes.BadCheckpoint, shape.Code);
        Assert.Contains(reshaped, shape.Message, StringComparison.Ordinal);

        var integer = new WeightSource(store.Names, n => n == "model.norm.weight" ? store.Load(n).to(ScalarType.Int32) : store.Load(n));
        Assert.Equal(ErrorCodes.BadCheckpoint, Assert.Throws<LrkException>(() => ModelLoader.Create(config, integer)).Code);
    }

    [Theory]
    [InlineData("gpt2", "transformer.", "")]
    [InlineData("opt", "model.decoder.", "decoder.")]
    public void Original_hub_checkpoint_names_load_like_save_pretrained_names(string name, string savedPrefix, string hubPrefix)
    {
        // openai-community/gpt2 and facebook/opt-* store "h.0.…"/"decoder.…" where save_pretrained writes "transformer.h.0.…"/"model.decoder.…".
        using var store = TensorStore.Open(ParityFixtures.Folder(name));
        var config = ModelConfigReader.Read(ParityFixtures.Folder(name));
        string Hub(string saved) => saved.StartsWith(savedPrefix, StringComparison.Ordinal) ? hubPrefix + saved[savedPrefix.Length..] : saved;
        var renamed = store.Names.ToDictionary(Hub, n => n);
        Assert.DoesNotContain(renamed.Keys, n => n.StartsWith(savedPrefix, StringComparison.Ordinal));
        using var saved = ModelLoader.Create(config, new WeightSource(store.Names, n => store.Load(n)));
        using var hub = ModelLoader.Create(config, new WeightSource(renamed.Keys, n => store.Load(renamed[n])));
        Assert.Empty(hub.UnusedTensors);
        Assert.StartsWith(hubPrefix, hub.BlockLinears(0)[0].Name, StringComparison.Ordinal);
        using var scope = NewDisposeScope();
        var ids = Ids(1, 5, 9, 13);
        Assert.Equal(0f, (((IDecoderModel)hub).Logits(ids) - ((IDecoderModel)saved).Logits(ids)).abs().max().item<float>());
    }

    [Theory]
    [InlineData("opt")]
    [InlineData("gpt2")]
    public void Learned_positions_refuse_sequences_past_their_table(string name)
    {
        using var loaded = Load(ParityFixtures.Folder(name));
        using var scope = NewDisposeScope();
        var tooLong = zeros([1, loaded.Config.MaxPositions + 1], ScalarType.Int64);
        var error = Assert.Throws<LrkException>(() => loaded.Model.Logits(tooLong));
        Assert.Equal(ErrorCodes.BadArgument, error.Code);
        // Generation stops at the position limit instead.
        var result = TextGenerator.Generate(loaded.Model, Enumerable.Repeat(5, loaded.Config.MaxPositions - 3).ToList(), new GenerationOptions { MaxNewTokens = 50 });
        Assert.Equal(StopReason.MaxPositions, result.StopReason);
        Assert.Equal(3, result.NewIds.Count);
    }

    [Theory]
    [InlineData("llama-moby", ScalarType.BFloat16)]
    [InlineData("opt-moby", ScalarType.Float16)]
    [InlineData("gpt2-moby", ScalarType.BFloat16)]
    public void Half_precision_compute_gives_fp32_logits_close_to_the_fp32_pass(string name, ScalarType dtype)
    {
        using var full = Load(RepoPaths.Model(name));
        using var half = Load(RepoPaths.Model(name), dtype);
        Assert.All(half.Model.BlockLinears(0), l => Assert.Equal(dtype, l.Weight!.dtype));
        using var scope = NewDisposeScope();
        var ids = tensor(full.Tokenizer!.Encode("Call me Ishmael. Some years ago, never mind how long precisely").Select(i => (long)i).ToArray()).unsqueeze(0);
        var reference = full.Model.Logits(ids);
        var approximate = half.Model.Logits(ids);
        Assert.Equal(ScalarType.Float32, approximate.dtype);
        var relative = ((approximate - reference).norm() / reference.norm()).item<float>();
        Assert.True(relative < 0.05, $"{name} in {dtype}: relative logit error {relative}");
        // Same greedy next tokens for the most part.
        var agreement = approximate.argmax(-1).eq(reference.argmax(-1)).to(ScalarType.Float32).mean().item<float>();
        Assert.True(agreement > 0.8, $"{name} in {dtype}: argmax agreement {agreement}");
    }

    [Fact]
    public void Sampling_repeats_for_a_seed_and_greedy_follows_the_argmax()
    {
        using var loaded = Load(RepoPaths.LlamaMoby);
        var prompt = loaded.Tokenizer!.Encode("The whale");
        GenerationResult Run(double temperature, long seed) =>
            TextGenerator.Generate(loaded.Model, prompt, new GenerationOptions { MaxNewTokens = 24, Temperature = temperature, Seed = seed });
        Assert.Equal(Run(1.0, 42).NewIds, Run(1.0, 42).NewIds);
        Assert.NotEqual(Run(1.0, 42).NewIds, Run(1.0, 43).NewIds);
        var greedy = Run(0, 0).NewIds;
        using var scope = NewDisposeScope();
        var sequence = prompt.Concat(greedy).Select(i => (long)i).ToArray();
        var logits = loaded.Model.Logits(tensor(sequence).unsqueeze(0))[0];
        for (var i = 0; i < greedy.Count; i++)
            Assert.Equal(greedy[i], (int)logits[prompt.Count - 1 + i].argmax().item<long>());
    }

    [Fact]
    public void Stream_blocks_is_a_no_op_on_the_cpu()
    {
        using var loaded = ModelLoader.Load(ParityFixtures.Folder("llama"), new ModelLoadOptions { Device = DeviceRequest.Cpu, StreamBlocks = true });
        Assert.False(((DecoderModel)loaded.Model).StreamBlocks);
    }

    [Fact]
    public void Lazy_block_weights_are_read_when_their_block_runs_and_dropped_after_unless_changed()
    {
        using var resident = Load(RepoPaths.LlamaMoby);
        using var lazy = ModelLoader.Load(RepoPaths.LlamaMoby, new ModelLoadOptions { Device = DeviceRequest.Cpu, LazyBlockWeights = true });
        var model = lazy.Model;
        // Nothing of the blocks' linears was read at load time.
        Assert.All(Enumerable.Range(0, model.BlockCount).SelectMany(model.BlockLinears), l => Assert.True(l.IsEvicted, l.Name));
        using var scope = NewDisposeScope();
        var ids = Ids(0, 5, 9, 13, 17, 21);
        Assert.Equal(0, (model.Logits(ids) - resident.Model.Logits(ids)).abs().max().item<float>());
        Assert.All(Enumerable.Range(0, model.BlockCount).SelectMany(model.BlockLinears), l => Assert.True(l.IsEvicted, l.Name));

        // While a block is held its weights stay; a changed weight is never dropped (it cannot be read again).
        var first = model.BlockLinears(0)[0];
        using (model.HoldOnDevice(0))
        {
            Assert.Equal(0, (first.Weight! - resident.Model.BlockLinears(0)[0].Weight!).abs().max().item<float>());
            Assert.False(first.IsEvicted);
            var weight = first.Weight!;
            first.Factorize(weight.narrow(1, 0, 4).clone(), eye(4, first.InFeatures));
        }
        Assert.True(first.IsFactorized);
        Assert.False(first.IsEvicted);
        Assert.False(first.Evict());
        Assert.True(model.BlockLinears(0)[1].IsEvicted);
    }

    [RequiresCudaFact]
    public void Streamed_blocks_on_cuda_give_the_resident_logits_and_return_to_the_host()
    {
        using var resident = ModelLoader.Load(RepoPaths.LlamaMoby, new ModelLoadOptions { Device = DeviceRequest.Cuda });
        using var streamed = ModelLoader.Load(RepoPaths.LlamaMoby, new ModelLoadOptions { Device = DeviceRequest.Cuda, StreamBlocks = true });
        Assert.True(((DecoderModel)streamed.Model).StreamBlocks);
        using var scope = NewDisposeScope();
        var ids = Ids(0, 5, 9, 13, 17, 21).to(CUDA);
        var difference = (streamed.Model.Logits(ids) - resident.Model.Logits(ids)).abs().max().item<float>();
        Assert.True(difference < 1e-5, $"streamed vs resident: {difference}");
        Assert.All(streamed.Model.BlockLinears(0), l => Assert.Equal(TorchSharp.DeviceType.CPU, l.Weight!.device_type));
        var generated = TextGenerator.Generate(streamed.Model, [0, 5, 9], new GenerationOptions { MaxNewTokens = 8 });
        Assert.Equal(TextGenerator.Generate(resident.Model, [0, 5, 9], new GenerationOptions { MaxNewTokens = 8 }).NewIds, generated.NewIds);
    }
}

/// <summary>A fact that needs a CUDA device; skipped with the reason on CPU-only machines.</summary>
public sealed class RequiresCudaFactAttribute : FactAttribute
{
    public RequiresCudaFactAttribute()
    {
        try
        {
            TorchBackend.Device(DeviceRequest.Cuda);
        }
        catch (LrkException e)
        {
            Skip = "no CUDA device: " + e.Message;
        }
    }
}
