using LowRank.Bench;
using LowRank.Evaluation.ZeroShot;

namespace LowRank.Bench.Tests;

public sealed class PairedClozeTests
{
    // Wrapped lines inside paragraphs, a first paragraph cut mid-word (dropped), brackets (HellaSwag's preprocessing).
    private const string Text = """
        ing the end of a sentence cut by the byte range. It is not used at all here.

        The ship sailed out of the harbour at dawn. The captain stood on
        the deck and watched the grey sea. Nobody spoke a single word for an hour.

        Ishmael went down to the whaling chapel on a cold morning. He sat
        near the wall and read the tablets [of the dead]. The preacher climbed into the pulpit by a rope ladder.

        The harpooneer slept in the same narrow bed as the stranger.
        In the morning his arm was thrown over the stranger in a loving way. They became friends before the voyage began.

        A storm rose in the night and the masts bent under the wind.
        The sailors ran to reef the sails before the canvas tore apart. By morning the sea was calm as a lake again.
        """;

    [Theory]
    [InlineData(ClozeKind.Sentence)]
    [InlineData(ClozeKind.Word)]
    public void Pairs_share_their_choices_so_a_context_blind_model_scores_exactly_one_half(ClozeKind kind)
    {
        var task = PairedCloze.Make("test", Text, kind, maxPairs: 100, source: "inline");
        Assert.True(task.Items.Count >= 4, $"{task.Items.Count} items");
        Assert.Equal(0, task.Items.Count % 2);
        for (var i = 0; i < task.Items.Count; i += 2)
        {
            var (a, b) = (task.Items[i], task.Items[i + 1]);
            Assert.Equal((0, 1), (a.Gold, b.Gold));
            Assert.Equal(a.Choices.Select(c => c.Continuation), b.Choices.Select(c => c.Continuation));
            Assert.NotEqual(a.Choices[0].Continuation, a.Choices[1].Continuation);
            Assert.NotEqual(a.Choices[0].Context, b.Choices[0].Context);
        }
        // Nothing from the cut first paragraph; brackets removed as HellaSwag's preprocessing does.
        Assert.DoesNotContain(task.Items, item => item.Choices.Any(c => (c.Context + c.Continuation).Contains("byte range", StringComparison.Ordinal)));
        Assert.DoesNotContain(task.Items, item => item.Choices.Any(c => (c.Context + c.Continuation).Contains('[', StringComparison.Ordinal)));
    }

    [Fact]
    public void The_written_file_reads_back_to_the_same_requests()
    {
        var task = PairedCloze.Make("test_word", Text, ClozeKind.Word, maxPairs: 100, source: "inline");
        using var temp = new TempFolder("lrk-cloze");
        var path = temp.File("cloze.jsonl");
        PairedCloze.Write(task, path);
        var read = TaskFile.Read(path);
        Assert.Equal(TaskFormat.HellaSwag, read.Format);
        Assert.Equal(task.Items.Count, read.Items.Count);
        for (var i = 0; i < task.Items.Count; i++)
        {
            Assert.Equal(task.Items[i].Gold, read.Items[i].Gold);
            Assert.Equal(task.Items[i].Choices, read.Items[i].Choices);
            Assert.Equal(task.Items[i].NormLengths, read.Items[i].NormLengths);
        }
    }

    [Fact]
    public void A_text_without_usable_pairs_is_a_clear_error()
    {
        var error = Assert.Throws<LrkException>(() => PairedCloze.Make("x", "Too short.", ClozeKind.Sentence, 10, "inline"));
        Assert.Equal(ErrorCodes.DataTooShort, error.Code);
    }
}
