using System.CommandLine;
using System.Globalization;

namespace LowRank.Tool.Tests;

/// <summary>Text that is not text and arguments out of range (issue 17): each a coded error, where they used to crash
/// (exit 70) or be read silently as something else.</summary>
public sealed partial class BadInputTests
{
    [Fact]
    public void A_lone_surrogate_in_a_tensor_name_is_a_coded_error_on_every_command()
    {
        var model = ModelWithConfig("surrogate", _ => { });
        SafeTensorsBytes.ReplaceInHeader(Weights(model), "\"model.norm.weight\"", "\"model.norm.weigh\\ud800\"");
        foreach (var command in CommandsOn(model))
        {
            var run = Run(null, command);
            AssertOneError(run, ErrorCodes.BadSafetensors, ExitCodes.Failure);
            Assert.Contains("surrogate", run.Messages[0], StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_byte_that_is_not_utf8_in_config_json_is_a_coded_error_not_replaced()
    {
        var model = ModelWithConfig("latin1", _ => { });
        var config = Path.Combine(model, "config.json");
        File.WriteAllBytes(config, File.ReadAllBytes(config).Concat("\n"u8.ToArray()).Select(b => b == (byte)'\n' ? (byte)0xFF : b).ToArray());
        foreach (var command in CommandsOn(model))
        {
            var run = Run(null, command);
            AssertOneError(run, ErrorCodes.BadConfig, ExitCodes.Failure);
            Assert.Contains("UTF-8", run.Messages[0], StringComparison.Ordinal);
        }
        // A lone surrogate escape in a value is no text either.
        File.WriteAllText(config, File.ReadAllText(Path.Combine(RepoPaths.LlamaMoby, "config.json")).Replace("\"silu\"", "\"silu\\ud800\"", StringComparison.Ordinal));
        AssertOneError(Run(null, "inspect", model), ErrorCodes.BadConfig, ExitCodes.Failure);
    }

    [Theory]
    [InlineData(new byte[] { 0xC3, 0x28 })] // invalid UTF-8
    [InlineData(new byte[] { (byte)'\\', (byte)'u', (byte)'d', (byte)'8', (byte)'0', (byte)'0' })] // a lone surrogate escape
    public void A_tokenizer_json_that_is_not_text_is_a_coded_error(byte[] inserted)
    {
        var model = ModelWithConfig("tokenizer-" + inserted.Length, _ => { });
        var path = Path.Combine(model, "tokenizer.json");
        var bytes = File.ReadAllBytes(path);
        var vocab = bytes.AsSpan().IndexOf("\"vocab\": {"u8);
        var key = bytes.AsSpan(vocab + 10).IndexOf((byte)'"') + vocab + 10 + 1; // just inside the first vocabulary key
        File.WriteAllBytes(path, [.. bytes[..key], .. inserted, .. bytes[key..]]);
        foreach (var command in new[]
        {
            new[] { "generate", model, "--prompt", "Call me", "--max-new-tokens", "1", "--device", "cpu" },
            ["compress", model, "--method", "svd-llm", "--ratio", "0.4", .. SmallCalibration, "--out", Path.Combine(temp.Path, "out-tok"), "--device", "cpu"],
        })
        {
            AssertOneError(Run(null, command), ErrorCodes.BadTokenizer, ExitCodes.Failure);
        }
    }

    [Theory]
    [InlineData(ErrorCodes.ModelNotFound, ExitCodes.Failure, "", "--method", "svd", "--ratio", "0.4")]
    [InlineData(ErrorCodes.BadArgument, ExitCodes.Failure, "LLAMA", "--method", "svd-llm", "--ratio", "0.4", "--calib", "npm:moby-dick", "--samples", "1000000000")]
    [InlineData(ErrorCodes.BadArgument, ExitCodes.Failure, "LLAMA", "--method", "svd-llm", "--ratio", "0.4", "--calib", "npm:moby-dick", "--calib-start", "-1")]
    [InlineData(ErrorCodes.BadArgument, ExitCodes.Failure, "LLAMA", "--method", "svd-llm", "--ratio", "0.4", "--calib", "npm:moby-dick", "--calib-end", "-5")]
    [InlineData(ErrorCodes.BadRatio, ExitCodes.Usage, "LLAMA", "--method", "svd", "--ratio", "0,4")]
    [InlineData(ErrorCodes.BadRatio, ExitCodes.Usage, "LLAMA", "--method", "svd", "--ratio", "abc")]
    [InlineData(ErrorCodes.BadArgument, ExitCodes.Usage, "LLAMA", "--method", "svd-llm", "--target-bits", "4,5")]
    public void Compress_arguments_out_of_range_are_coded_errors(string code, int exitCode, string model, params string[] options)
    {
        var run = Run(SmallHeap, ["compress", model == "LLAMA" ? RepoPaths.LlamaMoby : model, .. options, "--out", Out]);
        AssertOneError(run, code, exitCode);
        Assert.False(Directory.Exists(Out));
    }

    [Theory]
    [InlineData("de-DE")]
    [InlineData("fr-FR")]
    [InlineData("en-US")]
    public void Numbers_are_read_the_same_under_every_culture(string culture)
    {
        var before = CultureInfo.CurrentCulture;
        CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo(culture);
        try
        {
            var root = ToolCommands.CreateRoot();
            var point = root.Parse(["compress", "m", "--method", "svd", "--ratio", "0.4", "--out", "o"]);
            Assert.Empty(point.Errors);
            Assert.Equal(0.4, point.GetValue<double?>("--ratio"));
            var comma = root.Parse(["compress", "m", "--method", "svd", "--ratio", "0,4", "--out", "o"]);
            Assert.StartsWith($"{ErrorCodes.BadRatio}: --ratio='0,4'", Assert.Single(comma.Errors).Message, StringComparison.Ordinal);
            var bits = root.Parse(["compress", "m", "--method", "svd-llm", "--target-bits", "4,5", "--out", "o"]);
            Assert.StartsWith($"{ErrorCodes.BadArgument}: --target-bits '4,5' is not a number", Assert.Single(bits.Errors).Message, StringComparison.Ordinal);
            Assert.Equal(4.5, root.Parse(["compress", "m", "--method", "svd-llm", "--target-bits", "4.5", "--out", "o"]).GetValue<double?>("--target-bits"));
            Assert.Equal(0.5, root.Parse(["generate", "m", "--prompt", "x", "--temperature", "0.5"]).GetValue<double>("--temperature"));
            Assert.Single(root.Parse(["generate", "m", "--prompt", "x", "--temperature", "0,5"]).Errors);
            Assert.Equal(0.3, root.Parse(["demo", "--ratio", "0.3"]).GetValue<double>("--ratio"));
            Assert.Single(root.Parse(["demo", "--ratio", "0,3"]).Errors);
        }
        finally
        {
            CultureInfo.CurrentCulture = before;
        }
    }
}
