using System.Text.Json;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using Xunit.Abstractions;

namespace LowRank.Tests.Evaluation;

/// <summary>
/// The project's own small models (models/*-moby, committed) against the held-out perplexity that their training
/// script measured with Hugging Face transformers (models/train_summary.json): the last 10% (by characters) of
/// npm:moby-dick, [BOS] + encode(text), full 256-token windows only. Here: the same text through TextSources (as a
/// byte range), the plain protocol, and PerplexityEvaluator over the same full windows.
/// </summary>
public sealed class SmallModelPerplexityTests
{
    private readonly ITestOutputHelper _output;

    public SmallModelPerplexityTests(ITestOutputHelper output)
    {
        _output = output;
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [RequiresNpmCorporaFact]
    public void Moby_models_reproduce_their_training_scripts_held_out_perplexity()
    {
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "models", "train_summary.json")));
        var novel = TextSources.Load("npm:moby-dick", new TextSourceOptions { NpmRoot = EvalTestData.NpmRoot }).Text;
        // train_small.py: cut = int(len(moby) * 0.9) in code points; the novel has no characters outside the BMP
        Assert.DoesNotContain(novel, char.IsSurrogate);
        var cutBytes = System.Text.Encoding.UTF8.GetByteCount(novel.AsSpan(0, (int)(novel.Length * 0.9)));
        var heldOut = TextSources.Load($"npm:moby-dick[{cutBytes}:]", new TextSourceOptions { NpmRoot = EvalTestData.NpmRoot });

        foreach (var name in new[] { "llama-moby", "opt-moby", "gpt2-moby" })
        {
            var reference = summary.RootElement.GetProperty("models").GetProperty(name);
            using var loaded = ModelLoader.Load(RepoPaths.Model(name), new ModelLoadOptions { Device = DeviceRequest.Cpu });
            var tokens = TokenProtocol.Plain.Encode(loaded.Tokenizer!, heldOut);
            Assert.Equal(summary.RootElement.GetProperty("heldout_tokens").GetInt32(), tokens.Count);
            var fullWindows = tokens.Tokens[..((tokens.Count - 1) / 256 * 256)];
            var result = PerplexityEvaluator.Evaluate(loaded.Model, fullWindows, new PerplexityOptions { WindowLength = 256 });
            var expected = reference.GetProperty("heldout_ppl_fp16_weights").GetDouble();
            _output.WriteLine($"{name}: {result.ScoredTokens} tokens, PPL {result.Perplexity:F4} (training script: {expected}), {result.Seconds:F1} s");
            Assert.Equal(reference.GetProperty("heldout_scored_tokens").GetInt64(), result.ScoredTokens);
            Assert.InRange(result.Perplexity, expected * 0.999, expected * 1.001);
        }
    }

    [RequiresNpmCorporaFact]
    public void Block_streaming_gives_the_same_perplexity()
    {
        var text = TextSources.Load("npm:moby-dick[0:20000]", new TextSourceOptions { NpmRoot = EvalTestData.NpmRoot });
        var folder = RepoPaths.LlamaMoby;
        double Measure(bool stream)
        {
            using var loaded = ModelLoader.Load(folder, new ModelLoadOptions { Device = DeviceRequest.Cpu, StreamBlocks = stream });
            var tokens = TokenProtocol.Stream.Encode(loaded.Tokenizer!, text);
            return PerplexityEvaluator.Evaluate(loaded.Model, tokens.Tokens, new PerplexityOptions { WindowLength = 256, BatchSize = 8 }).MeanNll;
        }
        Assert.Equal(Measure(stream: false), Measure(stream: true), 6);
    }

    [Fact]
    public void Stream_join_tokens_are_the_tokenizers_own_newline()
    {
        using var loaded = ModelLoader.Load(RepoPaths.Model("gpt2-moby"), new ModelLoadOptions { Device = DeviceRequest.Cpu });
        var source = new SourceText
        {
            Text = "Call me Ishmael.\n\nSome years ago.", Location = "t", Format = "plain", Description = "t",
            Sha256 = SourceText.Sha256Hex("x"), Bytes = 33, TotalBytes = 33,
        };
        var tokens = TokenProtocol.Stream.Encode(loaded.Tokenizer!, source);
        var join = tokens.Protocol.JoinTokens!;
        Assert.Equal("\n", loaded.Tokenizer!.Decode(join));
        Assert.Equal(loaded.Tokenizer.BosId, tokens.Tokens[0]);
        Assert.Equal("Call me Ishmael.\nSome years ago.", loaded.Tokenizer.Decode(tokens.Tokens.Skip(1)));
    }
}
