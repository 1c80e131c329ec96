using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Tests.Models;
using LowRank.Tests.TestSupport;
using Xunit.Abstractions;

namespace LowRank.Tests.Evaluation;

/// <summary>
/// The acceptance numbers of the stories260K README ("Reference perplexity"): the real checkpoint, imported from
/// llama2.c and loaded through ModelLoader, scored on ../shared/data/tinystories_valid_prefix.txt with the stream
/// protocol and 512-token windows. Skipped visibly where ../shared is absent.
/// </summary>
public sealed class Stories260KPerplexityTests : IClassFixture<Stories260KTests.ImportedModel>
{
    private const string TextPath = "../shared/data/tinystories_valid_prefix.txt";
    private readonly Stories260KTests.ImportedModel _imported;
    private readonly ITestOutputHelper _output;

    public Stories260KPerplexityTests(Stories260KTests.ImportedModel imported, ITestOutputHelper output)
    {
        _imported = imported;
        _output = output;
    }

    private PerplexityResult Measure(string spec)
    {
        using var loaded = _imported.Load();
        var source = TextSources.Load(spec);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var tokens = TokenProtocol.Stream.Encode(loaded.Tokenizer!, source);
        var encodeSeconds = clock.Elapsed.TotalSeconds;
        var result = PerplexityEvaluator.Evaluate(loaded.Model, tokens.Tokens, new PerplexityOptions { WindowLength = 512 });
        _output.WriteLine($"{source.Description}: {tokens.Count} tokens (encoded in {encodeSeconds:F1} s), {result.Windows} windows, " +
            $"{result.ScoredTokens} scored, mean NLL {result.MeanNll:F6}, PPL {result.Perplexity:F4}, {result.Seconds:F1} s at batch {result.BatchSize}");
        Assert.Equal([13], tokens.Protocol.JoinTokens!);
        Assert.Equal(1, tokens.Protocol.BosId);
        Assert.False(result.Flagged);
        return result;
    }

    [RequiresPathFact(TextPath)]
    public void First_150000_bytes_give_71164_tokens_at_ppl_3_7454()
    {
        var result = Measure(EvalTestData.TinyStories + "[0:150000]");
        Assert.Equal(71_164, result.ScoredTokens);
        Assert.Equal(140, result.Windows);
        Assert.InRange(result.Perplexity, 3.7454 * 0.999, 3.7454 * 1.001);
        Assert.InRange(result.MeanNll, 1.320523 - 0.001, 1.320523 + 0.001);
    }

    [RequiresPathFact(TextPath)]
    public void Whole_file_gives_387957_tokens_at_ppl_4_6872()
    {
        var result = Measure(EvalTestData.TinyStories);
        Assert.Equal(387_957, result.ScoredTokens);
        Assert.Equal(760, result.Windows);
        Assert.InRange(result.Perplexity, 4.6872 * 0.999, 4.6872 * 1.001);
        Assert.InRange(result.MeanNll, 1.544826 - 0.001, 1.544826 + 0.001);
    }
}
