using LowRank.Models;
using LowRank.Models.Llama2c;
using LowRank.Models.Tokenizers;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>
/// The real stories260K checkpoint (../shared; skipped when absent), imported from llama2.c into an HF folder and
/// loaded back through <see cref="ModelLoader"/>, against llama2.c's golden outputs.
/// </summary>
public sealed class Stories260KTests : IClassFixture<Stories260KTests.ImportedModel>
{
    private readonly ImportedModel imported;

    public Stories260KTests(ImportedModel imported)
    {
        this.imported = imported;
    }

    /// <summary>One import per test class run (the import itself is tested in <see cref="Llama2cImportTests"/>).</summary>
    public sealed class ImportedModel : IDisposable
    {
        private readonly TempFolder temp = new();

        public ImportedModel()
        {
            TorchBackend.Initialize(DeviceRequest.Cpu);
            Folder = Path.Combine(temp.Path, "stories260K");
            if (File.Exists(Stories260K.Checkpoint)) Llama2cImporter.Import(Stories260K.Checkpoint, Stories260K.Tokenizer, Folder);
        }

        public string Folder { get; }

        public LoadedModel Load() => ModelLoader.Load(Folder, new ModelLoadOptions { Device = DeviceRequest.Cpu });

        public void Dispose() => temp.Dispose();
    }

    private static Tensor Ids(params int[] ids) => tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length], ScalarType.Int64);

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Logits_after_bos_match_llama2c()
    {
        var golden = Stories260K.ReadGoldens();
        using var loaded = imported.Load();
        using var scope = NewDisposeScope();
        var logits = loaded.Model.Logits(Ids(1))[0, 0].data<float>().ToArray();
        Assert.Equal(512, logits.Length);
        for (var i = 0; i < golden.FirstLogits.Length; i++)
            Assert.True(Math.Abs(logits[i] - golden.FirstLogits[i]) < 1e-4, $"logit {i}: {logits[i]} vs {golden.FirstLogits[i]}");
        var argmax = Array.IndexOf(logits, logits.Max());
        Assert.Equal(golden.ArgmaxId, argmax);
        Assert.True(Math.Abs(logits[argmax] - golden.ArgmaxLogit) < 1e-4, $"max logit {logits[argmax]} vs {golden.ArgmaxLogit}");
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Greedy_generation_from_bos_reproduces_llama2c_byte_for_byte()
    {
        var golden = Stories260K.ReadGoldens();
        using var loaded = imported.Load();
        var tokenizer = Assert.IsType<Llama2cTokenizer>(loaded.Tokenizer);
        var result = TextGenerator.Generate(loaded.Model, [tokenizer.BosId!.Value],
            new GenerationOptions { MaxNewTokens = 200, StopTokens = [tokenizer.BosId!.Value] });
        var text = tokenizer.Decode(result.PromptIds.Concat(result.NewIds));
        Assert.Equal(golden.GreedyText, text);
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Encoding_and_nll_of_once_upon_a_time_match()
    {
        var golden = Stories260K.ReadGoldens();
        using var loaded = imported.Load();
        var ids = loaded.Tokenizer!.Encode("Once upon a time").ToArray();
        Assert.Equal(golden.OnceUponATimeIds, ids);
        using var scope = NewDisposeScope();
        var logProbs = nn.functional.log_softmax(loaded.Model.Logits(Ids(ids))[0].to(ScalarType.Float64), 1);
        var nll = 0.0;
        for (var t = 1; t < ids.Length; t++) nll -= logProbs[t - 1, ids[t]].item<double>();
        Assert.True(Math.Abs(nll - golden.NllSum) < 1e-5, $"NLL {nll} vs {golden.NllSum}");
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Kv_cache_generation_matches_full_recomputation()
    {
        using var loaded = imported.Load();
        // The interface's default Logits(ids, cache) recomputes the whole sequence: the reference for the real cache.
        var recomputing = new RecomputingDecoder(loaded.Model);
        var options = new GenerationOptions { MaxNewTokens = 40, StopTokens = [1] };
        var cached = TextGenerator.Generate(loaded.Model, [1, 403], options);
        var recomputed = TextGenerator.Generate(recomputing, [1, 403], options);
        Assert.Equal(40, cached.NewIds.Count);
        Assert.Equal(recomputed.NewIds, cached.NewIds);
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Factorised_linears_with_exact_factors_give_the_dense_logits()
    {
        var checkpoint = Llama2cCheckpoint.Open(Stories260K.Checkpoint);
        var source = checkpoint.AsWeightSource();
        // Replace every block linear by factors A = U·diag(S), B = Vᴴ of full rank (what a compressed artifact stores).
        var tensors = new Dictionary<string, Tensor>();
        foreach (var name in source.Names)
        {
            var weight = source.Load(name);
            if (name.Contains(".layers.", StringComparison.Ordinal) && name.EndsWith("_proj.weight", StringComparison.Ordinal))
            {
                var prefix = name[..^".weight".Length];
                var (u, s, vh) = linalg.svd(weight.to(ScalarType.Float64), fullMatrices: false);
                tensors[prefix + DecoderModel.FactorASuffix] = (u * s.unsqueeze(0)).to(ScalarType.Float32);
                tensors[prefix + DecoderModel.FactorBSuffix] = vh.to(ScalarType.Float32);
            }
            else
            {
                tensors[name] = weight;
            }
        }
        using var dense = ModelLoader.Create(checkpoint.ToModelConfig(), source);
        using var factorised = ModelLoader.Create(checkpoint.ToModelConfig(), WeightSource.FromTensors(tensors));
        Assert.All(Enumerable.Range(0, factorised.BlockCount).SelectMany(factorised.BlockLinears), l => Assert.True(l.IsFactorized, l.Name));
        Assert.All(Enumerable.Range(0, dense.BlockCount).SelectMany(dense.BlockLinears), l => Assert.False(l.IsFactorized, l.Name));
        using var scope = NewDisposeScope();
        var ids = Ids(1, 403, 407, 261, 378, 13, 1);
        var maxAbs = (((IDecoderModel)factorised).Logits(ids) - ((IDecoderModel)dense).Logits(ids)).abs().max().item<float>();
        Assert.True(maxAbs < 1e-4, $"factorised vs dense logits differ by {maxAbs}");
        foreach (var tensor in tensors.Values) tensor.Dispose();
    }

    /// <summary>A decoder that only forwards the per-block API, so the interface's default (recomputing) decoding is used.</summary>
    private sealed class RecomputingDecoder(IDecoderModel inner) : IDecoderModel
    {
        public ModelConfig Config => inner.Config;
        public Device Device => inner.Device;
        public int BlockCount => inner.BlockCount;
        public IReadOnlyDictionary<string, Tensor> OtherTensors => inner.OtherTensors;
        public Tensor Embed(Tensor inputIds) => inner.Embed(inputIds);
        public Tensor RunBlock(int index, Tensor hidden, LinearInputObserver? observer = null) => inner.RunBlock(index, hidden, observer);
        public Tensor Head(Tensor hidden) => inner.Head(hidden);
        public IReadOnlyList<LinearWeight> BlockLinears(int index) => inner.BlockLinears(index);
        public void Dispose() { }
    }
}
