using LowRank.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>
/// <see cref="IStagedDecoder"/> on the committed parity fixtures: the linear groups partition each block's linears,
/// stepping a block group by group is <see cref="IDecoderModel.RunBlock"/> bit for bit (and transformers' logits), an
/// observer sees one tensor per group (statistics are shared by input identity) freed once its step is done, and a
/// lazily read block must be held for the staged calls.
/// </summary>
public sealed class StagedBlockTests
{
    public StagedBlockTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private const string LlamaGroups = "q_proj,k_proj,v_proj|o_proj|gate_proj,up_proj|down_proj";

    /// <summary>Fixture, OPT with do_layer_norm_before = false, the groups by kind.</summary>
    public static TheoryData<string, bool, string> Families() => new()
    {
        { "llama3", false, LlamaGroups },   // grouped-query attention: 4 heads, 2 key/value heads
        { "mistral", false, LlamaGroups },  // grouped-query attention and a sliding window of 8 (the sequences are 12 long)
        { "qwen2", false, LlamaGroups },    // biases on q/k/v
        { "opt", false, "q_proj,k_proj,v_proj|out_proj|fc1|fc2" },
        { "opt", true, "q_proj,k_proj,v_proj|out_proj|fc1|fc2" },
        { "gpt2", false, "attn.c_attn|attn.c_proj|mlp.c_fc|mlp.c_proj" },
    };

    /// <summary>A fixture as it is, or the opt fixture's weights run post-norm like OPT-350m (no fixture is): its final
    /// layer norm then goes unused.</summary>
    private static DecoderModel Load(string name, bool postNorm = false)
    {
        var folder = ParityFixtures.Folder(name);
        var config = ModelConfigReader.Read(folder);
        if (postNorm) config = config with { LayerNormBefore = false };
        using var store = TensorStore.Open(folder);
        return ModelLoader.Create(config, new WeightSource(store.Names, n => store.Load(n)));
    }

    /// <summary>Two sequences of 12 ids spread over the vocabulary.</summary>
    private static Tensor Ids(ModelConfig config) => (arange(24, ScalarType.Int64) * 37 + 3).remainder(config.VocabSize).reshape(2, 12);

    /// <summary>torch.equal: same shape and dtype, every element equal.</summary>
    private static bool BitEqual(Tensor a, Tensor b) => a.dtype == b.dtype && a.Equals(b);

    private static int[] GroupOf(IReadOnlyList<IReadOnlyList<LinearWeight>> groups, IEnumerable<LinearWeight> linears) =>
        linears.Select(l => groups.Select((group, g) => group.Any(m => ReferenceEquals(m, l)) ? g : -1).Single(g => g >= 0)).ToArray();

    [Theory]
    [MemberData(nameof(Families))]
    public void Linear_groups_hold_the_block_linears_in_order(string name, bool postNorm, string kinds)
    {
        using var model = Load(name, postNorm);
        if (name is "llama3" or "mistral") Assert.True(model.Config.NumKvHeads < model.Config.NumHeads);
        if (name == "qwen2") Assert.All(model.LinearGroups(0)[0], l => Assert.NotNull(l.Bias));
        for (var block = 0; block < model.BlockCount; block++)
        {
            var groups = model.LinearGroups(block);
            Assert.Equal(kinds, string.Join('|', groups.Select(g => string.Join(',', g.Select(l => l.Kind)))));
            var flattened = groups.SelectMany(g => g).ToList();
            var linears = model.BlockLinears(block);
            Assert.Equal(linears.Count, flattened.Count);
            for (var i = 0; i < linears.Count; i++) Assert.Same(linears[i], flattened[i]);
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Stepping_every_group_gives_run_block_exactly(string name, bool postNorm, string kinds)
    {
        using var model = Load(name, postNorm);
        using var scope = NewDisposeScope();
        var hidden = model.Embed(Ids(model.Config));
        for (var block = 0; block < model.BlockCount; block++)
        {
            var expected = model.RunBlock(block, hidden);
            var state = model.EnterBlock(block, hidden);
            Assert.Same(hidden, state.Residual);
            Assert.Equal(postNorm, ReferenceEquals(hidden, state.Input));
            for (var g = 0; g < kinds.Split('|').Length; g++)
            {
                Assert.NotNull(state.Input);
                state = model.StepBlock(block, g, state);
            }
            Assert.Null(state.Input);
            Assert.False(hidden.IsInvalid);
            Assert.True(BitEqual(expected, state.Residual), $"{name} block {block}: max |staged - RunBlock| = {(expected - state.Residual).abs().max().item<float>()}");
            hidden = state.Residual;
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void The_observer_sees_each_group_input_as_one_tensor_freed_after_its_step(string name, bool postNorm, string kinds)
    {
        using var model = Load(name, postNorm);
        using var scope = NewDisposeScope();
        var hidden = model.Embed(Ids(model.Config));
        for (var block = 0; block < model.BlockCount; block++)
        {
            var groups = model.LinearGroups(block);
            Assert.Equal(kinds.Split('|').Length, groups.Count);

            // Stepped by hand: each group's input values, and whether it is the residual stream (which outlives its group).
            var inputs = new List<Tensor>();
            var isResidual = new List<bool>();
            var state = model.EnterBlock(block, hidden);
            for (var g = 0; g < groups.Count; g++)
            {
                inputs.Add(state.Input!.clone());
                isResidual.Add(ReferenceEquals(state.Input, state.Residual));
                state = model.StepBlock(block, g, state);
            }

            var seen = new List<(LinearWeight Linear, Tensor Input, Tensor Values)>();
            var previousFreed = new List<bool>();
            var output = model.RunBlock(block, hidden, (linear, input) =>
            {
                if (seen.Count > 0 && !ReferenceEquals(seen[^1].Input, input)) previousFreed.Add(seen[^1].Input.IsInvalid);
                // The observer runs inside the block's dispose scope: the copy joins this test's scope instead.
                var copy = input.clone().DetachFromDisposeScope();
                scope.Attach(copy);
                seen.Add((linear, input, copy));
            });
            Assert.True(BitEqual(output, state.Residual));

            var linears = model.BlockLinears(block);
            Assert.Equal(linears.Count, seen.Count);
            for (var i = 0; i < seen.Count; i++) Assert.Same(linears[i], seen[i].Linear);
            var groupOf = GroupOf(groups, seen.Select(s => s.Linear));
            for (var i = 0; i < seen.Count; i++)
            {
                Assert.True(BitEqual(inputs[groupOf[i]], seen[i].Values), $"{name} block {block}: {seen[i].Linear.Kind} saw other values than its group's input");
            }
            // One tensor object per group (the linears of a group share one Gram), another one for the next group.
            var perGroup = Enumerable.Range(0, groups.Count).Select(g => seen.Where((_, i) => groupOf[i] == g).Select(s => s.Input).ToList()).ToList();
            Assert.All(perGroup, tensors => Assert.All(tensors, t => Assert.Same(tensors[0], t)));
            for (var g = 1; g < groups.Count; g++) Assert.NotSame(perGroup[g - 1][0], perGroup[g][0]);
            Assert.Equal(postNorm, ReferenceEquals(hidden, perGroup[0][0]));

            // A group's input is gone by the time the next group's linears see theirs, unless it is the residual stream;
            // none is left behind except the caller's hidden states.
            Assert.Equal(groups.Count - 1, previousFreed.Count);
            for (var g = 1; g < groups.Count; g++) Assert.Equal(!isResidual[g - 1], previousFreed[g - 1]);
            Assert.All(seen, s => Assert.Equal(!ReferenceEquals(s.Input, hidden), s.Input.IsInvalid));
            Assert.False(hidden.IsInvalid);
            hidden = output;
        }
    }

    [Theory]
    [MemberData(nameof(ParityFixtures.All), MemberType = typeof(ParityFixtures))]
    public void Stepped_blocks_give_the_transformers_logits(string name)
    {
        var parity = ParityFixtures.Reference(name);
        var reference = tensor(parity.Logits).reshape(parity.Shape);

        using var model = Load(name);
        using var scope = NewDisposeScope();
        var hidden = model.Embed(tensor(parity.FlatIds, [parity.Batch, parity.SequenceLength], ScalarType.Int64));
        for (var block = 0; block < model.BlockCount; block++)
        {
            var state = model.EnterBlock(block, hidden);
            for (var g = 0; state.Input is not null; g++) state = model.StepBlock(block, g, state);
            hidden = state.Residual;
        }
        var maxAbs = (model.Head(hidden) - reference).abs().max().item<float>();
        Assert.True(maxAbs < 1e-4, $"{name}: max |staged - transformers| = {maxAbs:E3}");
    }

    [Fact]
    public void Post_norm_opt_normalises_after_each_residual_add_and_feeds_the_residual_to_q_k_v_and_fc1()
    {
        using var model = Load("opt", postNorm: true);
        using var scope = NewDisposeScope();
        var hidden = model.Embed(Ids(model.Config));
        long batch = hidden.shape[0], n = hidden.shape[1], width = model.Config.HiddenSize, heads = model.Config.NumHeads, d = width / heads;
        var linear = model.BlockLinears(0).ToDictionary(l => l.Kind);
        Tensor Linear(string kind, Tensor x) => nn.functional.linear(x, linear[kind].Weight!, linear[kind].Bias);
        Tensor Norm(string name, Tensor x) => nn.functional.layer_norm(x, [width],
            model.OtherTensors[$"model.decoder.layers.0.{name}.weight"], model.OtherTensors[$"model.decoder.layers.0.{name}.bias"], model.Config.NormEps);
        Tensor Heads(Tensor x) => x.view(batch, n, heads, d).transpose(1, 2);

        // HF OPTDecoderLayer with do_layer_norm_before = false, attention written out with an explicit causal mask.
        var scores = matmul(Heads(Linear("q_proj", hidden)), Heads(Linear("k_proj", hidden)).transpose(-2, -1)) / Math.Sqrt(d);
        scores = scores.masked_fill(ones([n, n], ScalarType.Bool).triu(1), double.NegativeInfinity);
        var attention = matmul(scores.softmax(-1), Heads(Linear("v_proj", hidden))).transpose(1, 2).reshape(batch, n, width);
        var afterAttention = Norm("self_attn_layer_norm", hidden + Linear("out_proj", attention));
        var expected = Norm("final_layer_norm", afterAttention + Linear("fc2", nn.functional.relu(Linear("fc1", afterAttention))));

        var state = model.EnterBlock(0, hidden);
        Assert.Same(hidden, state.Input);
        state = model.StepBlock(0, 1, model.StepBlock(0, 0, state));
        Assert.Same(state.Residual, state.Input);
        Assert.True(state.Residual.allclose(afterAttention, rtol: 0, atol: 1e-5), "post-norm residual after the attention half");
        state = model.StepBlock(0, 3, model.StepBlock(0, 2, state));
        Assert.True(state.Residual.allclose(expected, rtol: 0, atol: 1e-5), "post-norm block output");
    }

    [Fact]
    public void A_lazily_read_block_must_be_held_for_the_staged_calls()
    {
        using var resident = Load("llama3");
        // On the CPU StreamBlocks is switched off; lazy weights alone make blocks visit.
        using var loaded = ModelLoader.Load(ParityFixtures.Folder("llama3"),
            new ModelLoadOptions { Device = DeviceRequest.Cpu, StreamBlocks = true, LazyBlockWeights = true, LoadTokenizer = false });
        var model = Assert.IsAssignableFrom<IStagedDecoder>(loaded.Model);
        Assert.False(((DecoderModel)model).StreamBlocks);
        using var scope = NewDisposeScope();
        var hidden = model.Embed(Ids(model.Config));

        var error = Assert.Throws<InvalidOperationException>(() => model.EnterBlock(1, hidden));
        Assert.Contains("HoldOnDevice(1)", error.Message, StringComparison.Ordinal);
        // Refused before anything was read.
        Assert.All(model.BlockLinears(1), l => Assert.True(l.IsEvicted, l.Name));

        BlockState state;
        using (model.HoldOnDevice(1))
        {
            state = model.StepBlock(1, 0, model.EnterBlock(1, hidden));
        }
        Assert.Throws<InvalidOperationException>(() => model.StepBlock(1, 1, state));
        using (model.HoldOnDevice(1))
        {
            for (var g = 1; g < model.LinearGroups(1).Count; g++) state = model.StepBlock(1, g, state);
        }
        Assert.All(model.BlockLinears(1), l => Assert.True(l.IsEvicted, l.Name));
        Assert.True(BitEqual(state.Residual, resident.RunBlock(1, hidden)));
        // RunBlock still brings a block over by itself.
        Assert.True(BitEqual(model.RunBlock(1, hidden), state.Residual));
    }

    [Fact]
    public void Staged_calls_check_the_block_the_group_and_the_state()
    {
        using var model = Load("gpt2");
        using var scope = NewDisposeScope();
        var hidden = model.Embed(Ids(model.Config));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.LinearGroups(model.BlockCount));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.EnterBlock(-1, hidden));
        var state = model.EnterBlock(0, hidden);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.StepBlock(0, 4, state));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.StepBlock(0, -1, state));
        for (var g = 0; g < 4; g++) state = model.StepBlock(0, g, state);
        Assert.Throws<ArgumentException>(() => model.StepBlock(0, 3, state));
    }
}
