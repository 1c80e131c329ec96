using LowRank.Models;
using LowRank.Models.Architectures;
using LowRank.Models.Llama2c;
using LowRank.Models.Tokenizers;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>The real stories260K checkpoint against llama2.c's golden outputs (../shared; skipped when absent).</summary>
public sealed class Stories260KTests
{
    public Stories260KTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private static LlamaModel LoadDirect(DecoderModelOptions? options = null)
    {
        var checkpoint = Llama2cCheckpoint.Open(Stories260K.Checkpoint);
        return new LlamaModel(checkpoint.ToModelConfig(), checkpoint.AsWeightSource(), options);
    }

    private static Tensor Ids(params int[] ids) => tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length], ScalarType.Int64);

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Logits_after_bos_match_llama2c()
    {
        var golden = Stories260K.ReadGoldens();
        using var model = LoadDirect();
        using var scope = NewDisposeScope();
        var logits = ((IDecoderModel)model).Logits(Ids(1))[0, 0].data<float>().ToArray();
        Assert.Equal(512, logits.Length);
        for (var i = 0; i < golden.FirstLogits.Length; i++) Assert.True(Math.Abs(logits[i] - golden.FirstLogits[i]) < 1e-4, $"logit {i}: {logits[i]} vs {golden.FirstLogits[i]}");
        var argmax = Array.IndexOf(logits, logits.Max());
        Assert.Equal(golden.ArgmaxId, argmax);
        Assert.True(Math.Abs(logits[argmax] - golden.ArgmaxLogit) < 1e-4, $"max logit {logits[argmax]} vs {golden.ArgmaxLogit}");
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Greedy_generation_from_bos_reproduces_llama2c_byte_for_byte()
    {
        var golden = Stories260K.ReadGoldens();
        var tokenizer = Llama2cTokenizer.Load(Stories260K.Tokenizer);
        using var model = LoadDirect();
        var result = TextGenerator.Generate(model, [1], new GenerationOptions { MaxNewTokens = 200, StopTokens = [1] });
        var text = tokenizer.Decode(result.PromptIds.Concat(result.NewIds));
        Assert.Equal(golden.GreedyText, text);
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Nll_of_once_upon_a_time_matches()
    {
        var golden = Stories260K.ReadGoldens();
        var tokenizer = Llama2cTokenizer.Load(Stories260K.Tokenizer);
        var ids = tokenizer.Encode("Once upon a time").ToArray();
        Assert.Equal(golden.OnceUponATimeIds, ids);
        using var model = LoadDirect();
        using var scope = NewDisposeScope();
        var logProbs = nn.functional.log_softmax(((IDecoderModel)model).Logits(Ids(ids))[0].to(ScalarType.Float64), 1);
        var nll = 0.0;
        for (var t = 1; t < ids.Length; t++) nll -= logProbs[t - 1, ids[t]].item<double>();
        Assert.True(Math.Abs(nll - golden.NllSum) < 1e-5, $"NLL {nll} vs {golden.NllSum}");
    }
}
