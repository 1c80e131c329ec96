using LowRank.Evaluation.ZeroShot;
using LowRank.Tests.TestSupport;

namespace LowRank.Tests.Evaluation;

public sealed class TaskFileTests : IDisposable
{
    private readonly TempFolder temp = new("lowrank-tasks");

    public void Dispose() => temp.Dispose();

    [Fact]
    public void Arc_reads_hf_and_ai2_layouts_with_letter_and_digit_labels()
    {
        var task = TaskFile.Read(EvalTestData.TaskFixture("arc_sample.jsonl"));
        Assert.Equal(TaskFormat.Arc, task.Format);
        Assert.Equal("arc_sample", task.Name);
        Assert.Equal(3, task.Items.Count);
        var first = task.Items[0];
        Assert.Equal("arc-1", first.Id);
        Assert.Equal(0, first.Gold);
        Assert.All(first.Choices, c => Assert.Equal("Question: Which of these does a plant need to grow?\nAnswer:", c.Context));
        Assert.Equal([" water", " a television", " a bicycle", " a song"], first.Choices.Select(c => c.Continuation));
        Assert.Equal([5, 12, 9, 6], first.NormLengths!);
        Assert.Equal(1, task.Items[1].Gold);
        Assert.Equal("Question: What is ice made of?\nAnswer:", task.Items[2].Choices[0].Context);
        Assert.Equal(" frozen water", task.Items[2].Choices[0].Continuation);
    }

    [Fact]
    public void Piqa_reads_numeric_and_string_labels()
    {
        var task = TaskFile.Read(EvalTestData.TaskFixture("piqa_sample.jsonl"));
        Assert.Equal(TaskFormat.Piqa, task.Format);
        Assert.Equal([0, 1], task.Items.Select(i => i.Gold));
        Assert.Equal("Question: To dry your wet hands,\nAnswer:", task.Items[0].Choices[1].Context);
        Assert.Equal(" dip them in a bucket of water.", task.Items[0].Choices[1].Continuation);
    }

    [Fact]
    public void Hellaswag_applies_the_harness_preprocessing()
    {
        // expected strings come from running the harness's preprocess() and _process_doc() in Python on this file
        var task = TaskFile.Read(EvalTestData.TaskFixture("hellaswag_sample.jsonl"));
        Assert.Equal(TaskFormat.HellaSwag, task.Format);
        var first = task.Items[0];
        Assert.Equal("Making a sandwich: A boy takes two slices of bread out of the bag. He spreads", first.Choices[0].Context);
        Assert.Equal(" peanut butter on one slice of the bread.", first.Choices[0].Continuation);
        Assert.Equal("7", first.Id);
        Assert.Equal("Home and Garden: How to water a plant. Fill a watering can. Pour", task.Items[1].Choices[0].Context);
        Assert.Equal(0, task.Items[1].Gold);
    }

    [Fact]
    public void Winogrande_scores_the_shared_ending_after_each_option()
    {
        var task = TaskFile.Read(EvalTestData.TaskFixture("winogrande_sample.jsonl"));
        Assert.Equal(TaskFormat.WinoGrande, task.Format);
        var first = task.Items[0];
        Assert.Equal(new ChoiceRequest("Lily gave Tom her ball because Lily", " had no toys to play with."), first.Choices[0]);
        Assert.Equal(new ChoiceRequest("Lily gave Tom her ball because Tom", " had no toys to play with."), first.Choices[1]);
        Assert.Equal(1, first.Gold);
        Assert.Null(first.NormLengths);
        Assert.Equal(0, task.Items[1].Gold);
    }

    [Fact]
    public void The_format_can_be_forced_with_a_prefix()
    {
        var (format, path) = TaskFile.ParseSpec("piqa:/data/x.jsonl");
        Assert.Equal(TaskFormat.Piqa, format);
        Assert.Equal("/data/x.jsonl", path);
        Assert.Equal((null, "other:/x"), TaskFile.ParseSpec("other:/x"));
    }

    [Theory]
    [InlineData("{\"goal\":\"a\",\"sol1\":\"b\",\"sol2\":\"c\",\"label\":0}\n{\"goal\": oops", "line 2: not valid JSON")]
    [InlineData("\n{\"prompt\":\"a\"}", "line 2: unknown layout")]
    [InlineData("{\"goal\":\"a\",\"sol1\":\"b\",\"sol2\":\"c\",\"label\":2}", "line 1: answer index 2 is outside the 2 choices")]
    [InlineData("{\"goal\":\"a\",\"sol1\":\"b\",\"sol2\":\"c\",\"label\":0}\n{\"goal\":\"a\",\"sol1\":\"b\",\"sol2\":\"c\"}", "line 2: missing field 'label'")]
    [InlineData("{\"question\":\"q\",\"choices\":{\"text\":[\"a\",\"b\"],\"label\":[\"A\",\"B\"]},\"answerKey\":\"C\"}", "line 1: answerKey 'C' is not one of the labels")]
    [InlineData("{\"sentence\":\"no blank here\",\"option1\":\"a\",\"option2\":\"b\",\"answer\":\"1\"}", "line 1: the sentence has no '_'")]
    [InlineData("{\"ctx\":\"a\",\"endings\":[\"x\", 3],\"label\":0}", "line 1: field 'endings' holds a Number")]
    [InlineData("\n\n", "has no items")]
    public void Bad_task_files_name_the_line(string content, string message)
    {
        var path = temp.Combine("bad.jsonl");
        File.WriteAllText(path, content);
        var e = Assert.Throws<LrkException>(() => TaskFile.Read(path));
        Assert.Equal(ErrorCodes.BadTaskFile, e.Code);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Missing_task_file_is_a_bad_task_file()
    {
        var e = Assert.Throws<LrkException>(() => TaskFile.Read(temp.Combine("missing.jsonl")));
        Assert.Equal(ErrorCodes.BadTaskFile, e.Code);
    }
}
