namespace LowRank.Tool.Tests;

/// <summary>Non-finite numbers (issue 17): weights, Grams and factors that are NaN/Inf, or would become Inf in their
/// storage dtype, are a coded error and nothing is written; a perplexity that comes out NaN fails compress --eval as it
/// fails eval (exit 3).</summary>
public sealed partial class BadInputTests
{
    private const ushort Fp16Max = 0x7BFF;
    private const ushort Fp16NaN = 0x7E00;

    private static readonly string[] Layer1Linears =
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

    private static readonly string[] SmallCalibration = ["--calib", "npm:moby-dick", "--calib-end", "100000", "--samples", "8", "--seq-len", "128"];

    private static string Weights(string model) => Path.Combine(model, "model.safetensors");

    [Fact]
    public void Factors_that_overflow_fp16_are_refused_before_anything_is_written()
    {
        // llama-moby is fp16: weights at fp16's maximum give SVD-LLM factors beyond ±65504, which used to be written as Inf with exit 0.
        var model = ModelWithConfig("fp16-max", _ => { });
        foreach (var linear in Layer1Linears) SafeTensorsBytes.FillF16(Weights(model), $"model.layers.1.{linear}.weight", Fp16Max);
        var output = Path.Combine(temp.Path, "out-fp16-max");
        var run = Run(null, ["compress", model, "--method", "svd-llm", "--ratio", "0.4", .. SmallCalibration, "--out", output, "--device", "cpu"]);
        AssertOneError(run, ErrorCodes.DecompositionFailed, ExitCodes.Failure);
        Assert.Contains("fp16", run.Messages[0], StringComparison.Ordinal);
        Assert.Contains("model.layers.1.", run.Messages[0], StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
        Assert.Empty(Directory.EnumerateDirectories(temp.Path, ".out-fp16-max*"));

        // fp32 factors hold them: the same model compresses.
        var fp32 = Run(null, ["compress", model, "--method", "svd-llm", "--ratio", "0.4", .. SmallCalibration, "--factor-dtype", "fp32", "--out", output, "--device", "cpu"]);
        Assert.True(fp32.ExitCode == 0, fp32.Describe());
    }

    [Theory]
    [InlineData("svd")]
    [InlineData("svd-llm")]
    public void Nan_weights_are_a_coded_error_without_a_native_stack(string method)
    {
        var model = ModelWithConfig("nan-" + method, _ => { });
        SafeTensorsBytes.FillF16(Weights(model), "model.layers.0.mlp.up_proj.weight", Fp16NaN);
        var output = Path.Combine(temp.Path, "out-nan");
        var run = Run(null, ["compress", model, "--method", method, "--ratio", "0.4", .. SmallCalibration, "--out", output, "--device", "cpu"]);
        AssertOneError(run, ErrorCodes.DecompositionFailed, ExitCodes.Failure);
        Assert.Contains("NaN", run.Messages[0], StringComparison.Ordinal);
        Assert.DoesNotContain(run.Stderr, l => l.Contains("frame #", StringComparison.Ordinal));
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void A_nan_norm_is_refused_by_compress_and_fails_compress_eval_like_eval()
    {
        var model = ModelWithConfig("nan-norm", _ => { });
        SafeTensorsBytes.FillF16(Weights(model), "model.norm.weight", Fp16NaN);
        var output = Path.Combine(temp.Path, "out-nan-norm");

        var svd = Run(null, "compress", model, "--method", "svd", "--ratio", "0.4", "--out", output, "--device", "cpu");
        AssertOneError(svd, ErrorCodes.DecompositionFailed, ExitCodes.Failure);
        Assert.Contains("model.norm.weight", svd.Messages[0], StringComparison.Ordinal);

        string[] eval = ["--eval", "npm:moby-dick", "--eval-start", "1000000", "--eval-end", "1020000"];
        var withEval = Run(null, ["compress", model, "--method", "svd-llm", "--ratio", "0.4", .. SmallCalibration, .. eval, "--out", output, "--device", "cpu"]);
        AssertOneError(withEval, ErrorCodes.NonFinitePerplexity, ExitCodes.CheckFailed);
        Assert.False(Directory.Exists(output));

        var alone = Run(null, "eval", model, "--text", "npm:moby-dick", "--text-start", "1000000", "--text-end", "1020000", "--device", "cpu");
        Assert.Equal(ExitCodes.CheckFailed, alone.ExitCode);
    }

    [Fact]
    public void A_tied_model_with_a_stray_head_of_the_wrong_shape_is_refused()
    {
        var model = ModelWithConfig("tied-head", config => Assert.True(config["tie_word_embeddings"]!.GetValue<bool>()));
        SafeTensorsBytes.AppendF16(Weights(model), "lm_head.weight", 7, 5);
        var output = Path.Combine(temp.Path, "out-tied");
        var run = Run(null, "compress", model, "--method", "svd", "--ratio", "0.4", "--out", output, "--device", "cpu");
        AssertOneError(run, ErrorCodes.BadCheckpoint, ExitCodes.Failure);
        Assert.Contains("lm_head.weight", run.Messages[0], StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
        AssertOneError(Run(null, "generate", model, "--prompt", "Call me", "--max-new-tokens", "1", "--device", "cpu"), ErrorCodes.BadCheckpoint, ExitCodes.Failure);

        // A stray head of the right shape is still accepted (transformers ignores it too).
        var fine = ModelWithConfig("tied-head-ok", _ => { });
        SafeTensorsBytes.AppendF16(Weights(fine), "lm_head.weight", 512, 128);
        Assert.Equal(0, Run(null, "compress", fine, "--method", "svd", "--ratio", "0.4", "--out", output, "--device", "cpu").ExitCode);
    }
}
