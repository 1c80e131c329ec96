using Xunit.Abstractions;
using System.Text.Json.Nodes;
using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Jobs;
using LowRank.Models;
using LowRank.Tests.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Artifacts;

/// <summary>
/// The artifact round trip on the built-in default model (models/llama-moby): compress with SVD-LLM on Moby-Dick
/// (npm), write the artifact, load it back, and check it is the model that was compressed, bit for bit.
/// </summary>
public sealed class ArtifactRoundTripTests
{
    private const string Corpus = "npm:moby-dick";
    private readonly ITestOutputHelper output;

    public ArtifactRoundTripTests(ITestOutputHelper output)
    {
        this.output = output;
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    internal static LoadedModel Load(string folder) => ModelLoader.Load(folder, new ModelLoadOptions { Device = DeviceRequest.Cpu });

    private static TextSourceOptions Npm => new() { NpmRoot = EvalTestData.NpmRoot };

    /// <summary>SVD-LLM at 0.4 on 32 × 128 tokens of the first 90% of Moby-Dick; factors rounded to the storage dtype.</summary>
    private static CalibrationProtocol CompressSvdLlm(LoadedModel loaded, FactorDtype dtype)
    {
        var cut = TextSplit.Cut(Corpus, 0.9, Npm);
        var source = TextSources.Load(Corpus, Npm with { ByteEnd = cut });
        var stream = TokenProtocol.Stream.Encode(loaded.Tokenizer!, source);
        using var calibration = CalibrationSampler.Sample(stream, source, new CalibrationOptions { Samples = 32, SeqLen = 128, Seed = 7 });
        Compressor.Compress(loaded.Model, calibration.Tokens, new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.4 });
        ArtifactWriter.RoundFactorsToStorage(loaded.Model, dtype);
        return calibration.Protocol;
    }

    private static TextPerplexitySpec HeldOut()
    {
        var cut = TextSplit.Cut(Corpus, 0.9, Npm);
        return new TextPerplexitySpec { Text = Path.Combine(EvalTestData.NpmRoot, "node_modules", "@stdlib", "datasets-moby-dick", "data", "data.txt"), ByteStart = cut, ByteEnd = cut + 30_000 };
    }

    private static double Perplexity(IDecoderModel model, ITokenizer tokenizer, TextPerplexitySpec spec)
    {
        var (source, tokens) = TextPerplexity.Encode(tokenizer, spec);
        return TextPerplexity.Measure(model, source, tokens, spec).Perplexity.Perplexity;
    }

    [RequiresNpmCorporaFact]
    public void Svd_llm_artifact_loads_back_as_the_compressed_model_and_exports_to_the_same_perplexity()
    {
        using var temp = new TempFolder();
        var artifact = temp.File("llama-moby-svd-llm");
        using var loaded = Load(RepoPaths.LlamaMoby);
        var protocol = CompressSvdLlm(loaded, FactorDtype.Float16);
        var spec = HeldOut();
        var pplInMemory = Perplexity(loaded.Model, loaded.Tokenizer!, spec);

        var written = ArtifactWriter.Write(new ArtifactRequest
        {
            Model = loaded.Model,
            SourcePath = RepoPaths.LlamaMoby,
            OutputFolder = artifact,
            Method = "svd-llm",
            RequestedRatio = 0.4,
            Provenance = new ArtifactProvenance
            {
                Seed = 7,
                Calibration = new ManifestCalibration(protocol.Source, protocol.SourceSha256, JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(protocol))),
                Metrics = new JsonObject { ["ppl_after"] = pplInMemory },
            },
        });

        // The section: fp16 factors (llama-moby is fp16), every one of the 28 block linears factorised, ratios from the ranks.
        var section = LowRankSection.Read(artifact)!;
        Assert.Equal(FactorDtype.Float16, section.FactorDtype);
        Assert.Equal(28, section.TruncationRanks.Count);
        var linears = Enumerable.Range(0, loaded.Model.BlockCount).SelectMany(loaded.Model.BlockLinears).ToList();
        var before = linears.Sum(l => l.OutFeatures * l.InFeatures);
        var after = linears.Sum(l => (long)section.TruncationRanks[l.Name] * (l.OutFeatures + l.InFeatures));
        Assert.Equal(1.0 - (double)after / before, section.AchievedRatio, 5);
        Assert.InRange(section.AchievedRatio, 0.4, 0.45);
        Assert.True(section.AchievedRatioModel < section.AchievedRatio);
        Assert.Equal(written.Section.TruncationRanks, section.TruncationRanks);

        // The config is the source's plus the section, key for key, under the artifact's own transformers names
        // (HuggingFaceContractTests): putting the stock names back and dropping auto_map gives the source's.
        var sourceConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(RepoPaths.LlamaMoby, "config.json")))!.AsObject();
        var artifactConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(artifact, "config.json")))!.AsObject();
        Assert.Equal("lowrank_llama", (string?)artifactConfig["model_type"]);
        artifactConfig["model_type"] = artifactConfig["lowrank"]!["base_model_type"]!.DeepClone();
        artifactConfig["architectures"] = artifactConfig["lowrank"]!["base_architectures"]!.DeepClone();
        artifactConfig.Remove("auto_map");
        artifactConfig.Remove("lowrank");
        Assert.True(JsonNode.DeepEquals(sourceConfig, artifactConfig));

        // Untouched tensors are byte-identical to the source; factors replace each linear's weight.
        using (var source = TensorStore.Open(RepoPaths.LlamaMoby))
        using (var stored = TensorStore.Open(artifact))
        {
            foreach (var name in stored.Names.Where(n => !n.Contains(".lowrank_", StringComparison.Ordinal)))
            {
                var a = new byte[source.Info(name).ByteLength];
                var b = new byte[stored.Info(name).ByteLength];
                source.ReadBytes(name, a);
                stored.ReadBytes(name, b);
                Assert.True(a.AsSpan().SequenceEqual(b), $"{name} differs from the source");
            }
            foreach (var linear in linears)
            {
                Assert.False(stored.Contains(linear.Name + ".weight"));
                Assert.Equal([linear.OutFeatures, linear.Rank], stored.Info(linear.Name + ".lowrank_A.weight").Shape);
                Assert.Equal([linear.Rank, linear.InFeatures], stored.Info(linear.Name + ".lowrank_B.weight").Shape);
                Assert.Equal("F16", stored.Info(linear.Name + ".lowrank_A.weight").Dtype);
            }
        }
        Assert.Empty(written.Manifest.ModifiedTensors);
        foreach (var file in new[] { "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "generation_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(RepoPaths.LlamaMoby, file)), File.ReadAllBytes(Path.Combine(artifact, file)));

        // Loading the artifact gives the in-memory compressed model exactly.
        using var reloaded = Load(artifact);
        using (var scope = NewDisposeScope())
        {
            var ids = tensor(loaded.Tokenizer!.Encode("Call me Ishmael. Some years ago, never mind how long precisely").Select(i => (long)i).ToArray()).unsqueeze(0);
            var expected = loaded.Model.Logits(ids);
            var actual = reloaded.Model.Logits(ids);
            Assert.Equal(0.0, (expected - actual).abs().max().item<float>());
        }
        Assert.Equal(pplInMemory, Perplexity(reloaded.Model, reloaded.Tokenizer!, spec));

        // The manifest verifies.
        var verified = ArtifactVerifier.Verify(artifact);
        Assert.True(verified.Ok, string.Join("; ", verified.Problems));
        Assert.Equal(Directory.GetFiles(artifact).Length - 1, verified.FilesChecked);

        // Dense export: same perplexity within 1e-3 relative in the default (fp16) dtype, and tighter in fp32.
        var dense16 = DenseExporter.Export(artifact, temp.File("dense16"));
        Assert.Equal("float16", dense16.Dtype);
        var dense32 = DenseExporter.Export(artifact, temp.File("dense32"), new DenseExportOptions { Dtype = FactorDtype.Float32 });
        using var loaded16 = Load(dense16.Folder);
        using var loaded32 = Load(dense32.Folder);
        var ppl16 = Perplexity(loaded16.Model, loaded16.Tokenizer!, spec);
        var ppl32 = Perplexity(loaded32.Model, loaded32.Tokenizer!, spec);
        output.WriteLine($"held-out PPL: compressed in memory {pplInMemory:R}, dense fp16 export {ppl16:R}, dense fp32 export {ppl32:R}; achieved ratio {section.AchievedRatio}");
        Assert.InRange(Math.Abs(ppl16 / pplInMemory - 1), 0, 1e-3);
        Assert.InRange(Math.Abs(ppl32 / pplInMemory - 1), 0, 1e-5);
        // The dense export is an ordinary checkpoint: the source's config exactly, dense weights of the source's shapes.
        var denseConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(dense16.Folder, "config.json")))!.AsObject();
        Assert.True(JsonNode.DeepEquals(sourceConfig, denseConfig));
        using (var source = TensorStore.Open(RepoPaths.LlamaMoby))
        using (var dense = TensorStore.Open(dense16.Folder))
        {
            Assert.Equal(source.Names.Order(StringComparer.Ordinal), dense.Names.Order(StringComparer.Ordinal));
            foreach (var name in source.Names) Assert.Equal(source.Info(name).Shape, dense.Info(name).Shape);
        }
        Assert.False(File.Exists(Path.Combine(dense16.Folder, ArtifactFormat.ManifestFileName)));
    }

    [RequiresNpmCorporaFact]
    public void Compression_job_records_perplexities_that_an_evaluation_of_the_artifact_reproduces()
    {
        using var temp = new TempFolder();
        var cut = TextSplit.Cut(Corpus, 0.9, Npm);
        var spec = HeldOut();
        var result = CompressionJob.Run(new CompressionJobOptions
        {
            Model = RepoPaths.LlamaMoby,
            Out = temp.File("artifact"),
            Compression = new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.4 },
            Calibration = new CalibrationSpec { Text = Corpus, ByteEnd = cut, Samples = 16, SeqLen = 128 },
            FactorDtype = FactorDtype.BFloat16,
            Evaluation = spec,
            Device = DeviceRequest.Cpu,
        });

        var manifest = ArtifactManifest.Read(result.Out);
        Assert.Equal("svd-llm", manifest.Method.Name);
        Assert.Equal("bfloat16", manifest.Method.FactorDtype);
        Assert.Equal(42, manifest.Seed);
        Assert.NotNull(manifest.Calibration);
        Assert.Equal(manifest.Calibration!.SourceSha256, manifest.Calibration.Protocol!["source_sha256"]!.GetValue<string>());
        Assert.Contains("compress", manifest.TimingsSeconds.Keys);
        Assert.Contains("write", manifest.TimingsSeconds.Keys);
        Assert.StartsWith("sha256:", manifest.Source.Digest, StringComparison.Ordinal);
        Assert.Contains(manifest.Files, f => f.Path == CompressionJob.ReportFileName);
        var pplAfter = manifest.Metrics!["ppl_after"]!.GetValue<double>();
        var pplBefore = manifest.Metrics["ppl_before"]!.GetValue<double>();
        Assert.True(pplAfter > pplBefore, $"compression at 0.4 should cost perplexity ({pplBefore} → {pplAfter})");

        output.WriteLine($"held-out PPL before {pplBefore:R}, after {pplAfter:R} (bf16 factors)");
        using var reloaded = Load(result.Out);
        Assert.Equal(pplAfter, Perplexity(reloaded.Model, reloaded.Tokenizer!, spec));
        using var original = Load(RepoPaths.LlamaMoby);
        Assert.Equal(pplBefore, Perplexity(original.Model, original.Tokenizer!, spec));
        Assert.True(ArtifactVerifier.Verify(result.Out).Ok);
    }
}
