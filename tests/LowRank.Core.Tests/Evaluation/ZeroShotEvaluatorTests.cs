using LowRank.Evaluation.ZeroShot;
using LowRank.Tests.TestSupport;
using LowRank.Torch;

namespace LowRank.Tests.Evaluation;

/// <summary>The log-likelihood scoring on a bigram model with the byte tokenizer, where every number has a closed form.</summary>
public sealed class ZeroShotEvaluatorTests
{
    private readonly ByteTokenizer _tokenizer = new();

    public ZeroShotEvaluatorTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    /// <summary>Σ log P(next | previous) over the continuation's bytes; the first one follows the last token of the
    /// context as encoded with BOS and the dummy prefix (trailing spaces of the context move to the continuation).</summary>
    private static double ClosedForm(BigramModel model, ChoiceRequest request)
    {
        var tokenizer = new ByteTokenizer();
        var context = tokenizer.Encode(request.Context.TrimEnd());
        var whole = tokenizer.Encode(request.Context + request.Continuation);
        double sum = 0;
        for (var t = context.Count; t < whole.Count; t++) sum -= model.Nll(whole[t - 1], whole[t]);
        return sum;
    }

    [Theory]
    [InlineData("arc_sample.jsonl", 3)]
    [InlineData("piqa_sample.jsonl", 5)]
    [InlineData("hellaswag_sample.jsonl", 1)]
    [InlineData("winogrande_sample.jsonl", 16)]
    public void Log_likelihoods_equal_the_closed_form_for_any_batch(string fixture, int batch)
    {
        using var model = new BigramModel(BigramModel.RandomTable(259, seed: 11));
        var task = TaskFile.Read(EvalTestData.TaskFixture(fixture));
        var result = ZeroShotEvaluator.Evaluate(model, _tokenizer, task, new ZeroShotOptions { BatchSize = batch });
        Assert.Equal(task.Items.Count, result.Items);
        Assert.True(result.Bos);
        var correct = 0;
        var correctNorm = 0;
        for (var i = 0; i < task.Items.Count; i++)
        {
            var item = task.Items[i];
            var expected = item.Choices.Select(c => ClosedForm(model, c)).ToArray();
            var score = result.Scores[i];
            for (var c = 0; c < expected.Length; c++) Assert.Equal(expected[c], score.LogLikelihoods[c], 3);
            Assert.Equal(ZeroShotEvaluator.ArgMax(expected), score.Predicted);
            if (score.Predicted == item.Gold) correct++;
            if (item.NormLengths is { } lengths)
            {
                var norm = ZeroShotEvaluator.ArgMax(expected.Select((ll, c) => ll / lengths[c]).ToArray());
                Assert.Equal(norm, score.PredictedNorm);
                if (norm == item.Gold) correctNorm++;
            }
        }
        Assert.Equal((double)correct / task.Items.Count, result.Acc, 12);
        if (fixture.StartsWith("winogrande", StringComparison.Ordinal)) Assert.Null(result.AccNorm);
        else Assert.Equal((double)correctNorm / task.Items.Count, result.AccNorm!.Value, 12);
    }

    [Fact]
    public void Uniform_logits_tie_and_the_first_shortest_choice_wins()
    {
        const int v = 259;
        var table = new double[v, v];
        for (var i = 0; i < v; i++)
            for (var j = 0; j < v; j++) table[i, j] = 1.0 / v;
        using var model = new BigramModel(table);
        var task = TaskFile.Read(EvalTestData.TaskFixture("arc_sample.jsonl"));
        var result = ZeroShotEvaluator.Evaluate(model, _tokenizer, task);
        foreach (var (item, score) in task.Items.Zip(result.Scores))
        {
            var tokens = item.Choices.Select(c => System.Text.Encoding.UTF8.GetByteCount(c.Continuation)).ToArray();
            for (var c = 0; c < tokens.Length; c++) Assert.Equal(-tokens[c] * Math.Log(v), score.LogLikelihoods[c], 3);
            var shortest = Array.IndexOf(tokens, tokens.Min());
            Assert.Equal(shortest, score.Predicted);
        }
        // arc-1: " water" and " a song" are both the shortest (6 bytes): a tie, the first (the gold A) wins;
        // arc-2: " wings" (6) beats " wheels" and " spoons" (7): index 1, the gold; arc-3: " sand" beats " frozen water": not the gold.
        Assert.Equal([0, 1, 1], result.Scores.Select(s => s.Predicted));
        Assert.Equal(2.0 / 3, result.Acc, 12);
    }

    [Fact]
    public void Long_contexts_are_cut_from_the_left_like_the_harness()
    {
        using var model = new BigramModel(BigramModel.RandomTable(259, seed: 2), maxPositions: 40);
        var task = TaskFile.Read(EvalTestData.TaskFixture("piqa_sample.jsonl"));
        var result = ZeroShotEvaluator.Evaluate(model, _tokenizer, task);
        Assert.Equal(4, result.TruncatedRequests);
        // a bigram model only looks one token back, so the scores do not change when the far context is cut
        for (var i = 0; i < task.Items.Count; i++)
            for (var c = 0; c < 2; c++)
                Assert.Equal(ClosedForm(model, task.Items[i].Choices[c]), result.Scores[i].LogLikelihoods[c], 3);
    }

    [Fact]
    public void A_continuation_longer_than_the_context_window_is_a_bad_task_file()
    {
        using var model = new BigramModel(BigramModel.RandomTable(259, seed: 2), maxPositions: 4);
        var task = TaskFile.Read(EvalTestData.TaskFixture("piqa_sample.jsonl"));
        var e = Assert.Throws<LrkException>(() => ZeroShotEvaluator.Evaluate(model, _tokenizer, task));
        Assert.Equal(ErrorCodes.BadTaskFile, e.Code);
    }

    [Fact]
    public void Argmax_takes_the_first_of_equal_values_and_never_nan()
    {
        Assert.Equal(0, ZeroShotEvaluator.ArgMax([1.0, 1.0, 0.5]));
        Assert.Equal(1, ZeroShotEvaluator.ArgMax([0.5, 2.0, 2.0]));
        Assert.Equal(1, ZeroShotEvaluator.ArgMax([double.NaN, -3.0]));
    }
}
