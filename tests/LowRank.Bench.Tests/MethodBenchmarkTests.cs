using LowRank.Compression;
using LowRank.Data;
using LowRank.Torch;

namespace LowRank.Bench.Tests;

/// <summary><c>bench methods</c> with its issue-19 options on the committed llama-moby (tiny calibration: a few seconds).</summary>
public sealed class MethodBenchmarkTests
{
    public MethodBenchmarkTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [Fact]
    public void Variants_held_out_samples_tasks_and_the_diagnosis_make_their_rows()
    {
        var result = MethodBenchmark.Run(new MethodBenchmarkOptions
        {
            Model = RepoPaths.LlamaMoby,
            Methods = [CompressionMethod.SvdLlm],
            Variants = [MethodVariant.Parse("compressed propagation=svd-llm; Propagation=Compressed")],
            Ratios = [0.5],
            // The README is text the model has never seen; any text does for the plumbing.
            Calibration = new CalibrationSpec { Text = RepoPaths.Readme, ByteEnd = 20_000, Samples = 4, SeqLen = 32 },
            Evaluation = RepoPaths.Readme,
            EvaluationByteStart = 20_000,
            EvaluationByteEnd = 24_000,
            Window = 64,
            Device = DeviceRequest.Cpu,
            HeldOut = 2,
            Tasks = [Path.Combine(RepoPaths.Fixtures, "tasks", "piqa_sample.jsonl")],
            Diagnose = true,
        });
        Assert.Equal(["SVD-LLM", "compressed propagation"], result.Rows.Select(r => r.Label));
        var (plain, variant) = (result.Rows[0], result.Rows[1]);
        Assert.Equal("Original", plain.Report.Propagation);
        Assert.Equal("Compressed", variant.Report.Propagation);
        Assert.Equal(["Propagation=Compressed"], variant.Set);
        Assert.Equal(plain.Perplexity - result.OriginalPerplexity, result.Excess(plain));
        Assert.Equal(0, result.ExcessRemoved(plain)!.Value, 12);
        Assert.Equal(1 - result.Excess(variant) / result.Excess(plain), result.ExcessRemoved(variant)!.Value, 12);
        Assert.Equal(2, result.HeldOutSamples);
        Assert.NotNull(result.OriginalHeldOutPerplexity);
        Assert.All(result.Rows, r => Assert.NotNull(r.HeldOutPerplexity));
        Assert.Equal(2, Assert.Single(result.OriginalTasks).Items);
        Assert.All(result.Rows, r => Assert.Equal("piqa_sample", Assert.Single(r.Tasks).Task));
        // The diagnosis's held-out NLL is the held-out perplexity the row reports.
        Assert.All(result.Rows, r => Assert.Equal(Math.Log(r.HeldOutPerplexity!.Value), r.Diagnosis!.Nll.HeldOut!.Value, 9));
        Assert.All(result.Rows, r => Assert.Equal(4 * 31, r.Diagnosis!.CalibrationTokens));
        var markdown = result.Markdown();
        Assert.Contains("Excess perplexity", markdown, StringComparison.Ordinal);
        Assert.Contains("| compressed propagation |", markdown, StringComparison.Ordinal);
        Assert.Contains("held-out calibration samples", markdown, StringComparison.Ordinal);
        Assert.Contains("| compressed propagation | 0.5 |", result.DiagnosisMarkdown(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("noequals")]
    [InlineData("=svd-llm")]
    [InlineData("label=")]
    [InlineData("label=no-such-method")]
    public void A_malformed_variant_is_a_clear_error(string text) =>
        Assert.Throws<LrkException>(() => MethodVariant.Parse(text));
}
