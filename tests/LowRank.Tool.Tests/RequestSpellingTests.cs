using LowRank.Compression;

namespace LowRank.Tool.Tests;

/// <summary>
/// <c>compress</c>'s command line accepts exactly the method names, factor dtype spellings, ratios, seeds, sample
/// counts and devices the MSBuild item and the cache key accept (<see cref="RequestSpellings"/>; LowRank.Build.Tasks.Tests checks the item with the same
/// lists), and rejects the same ones with the same codes. In process: only the parse, nothing runs.
/// </summary>
public sealed class RequestSpellingTests
{
    private static readonly System.CommandLine.RootCommand Root = ToolCommands.CreateRoot();

    private static string[] Errors(params string[] options) =>
        Root.Parse(["compress", "model", "-o", "out", .. options]).Errors.Select(e => e.Message).ToArray();

    private static void AssertRejected(string code, params string[] options)
    {
        var errors = Errors(options);
        Assert.True(errors.Any(e => e.StartsWith(code + ":", StringComparison.Ordinal)), $"{string.Join(' ', options)}: {string.Join("; ", errors)}");
    }

    [Fact]
    public void Method_names_are_those_of_the_table()
    {
        foreach (var (spelling, canonical) in RequestSpellings.Methods)
        {
            var options = CompressionMethods.Parse(canonical).IsQuantizationOnly() ? new[] { "--bits", "4" } : ["--ratio", "0.4"];
            Assert.Empty(Errors(["--method", spelling, .. options]));
        }
        foreach (var bad in RequestSpellings.BadMethods) AssertRejected(ErrorCodes.UnknownMethod, "--method", bad, "--ratio", "0.4");
    }

    [Fact]
    public void Factor_dtype_spellings_are_those_of_the_table()
    {
        foreach (var (spelling, _) in RequestSpellings.FactorDtypes) Assert.Empty(Errors("--method", "svd", "--ratio", "0.4", "--factor-dtype", spelling));
        foreach (var bad in RequestSpellings.BadFactorDtypes) AssertRejected(ErrorCodes.BadArgument, "--method", "svd", "--ratio", "0.4", "--factor-dtype", bad);
    }

    [Fact]
    public void Ratios_follow_the_rule_with_a_dot_in_every_culture()
    {
        var culture = System.Globalization.CultureInfo.CurrentCulture;
        try
        {
            System.Globalization.CultureInfo.CurrentCulture = new System.Globalization.CultureInfo("de-DE");
            foreach (var (spelling, value) in RequestSpellings.Ratios)
            {
                var parsed = Root.Parse(["compress", "model", "-o", "out", "--method", "svd", "--ratio", spelling]);
                Assert.Empty(parsed.Errors);
                Assert.Equal(value, parsed.GetValue<double?>("--ratio"));
            }
            foreach (var bad in RequestSpellings.BadRatios) AssertRejected(ErrorCodes.BadRatio, "--method", "svd", "--ratio", bad);
        }
        finally
        {
            System.Globalization.CultureInfo.CurrentCulture = culture;
        }
    }

    [Fact]
    public void Seeds_samples_and_sequence_lengths_have_the_items_ranges()
    {
        string[] Compress(params string[] options) => ["compress", "model", "-o", "out", "--method", "svd", "--ratio", "0.4", .. options];
        foreach (var (spelling, value) in RequestSpellings.Seeds)
        {
            var parsed = Root.Parse(Compress("--seed", spelling));
            Assert.Empty(parsed.Errors);
            Assert.Equal(value, parsed.GetValue<int>("--seed"));
        }
        foreach (var bad in RequestSpellings.BadSeeds) AssertRejected(ErrorCodes.BadArgument, "--method", "svd", "--ratio", "0.4", "--seed", bad);
        foreach (var option in new[] { "--samples", "--seq-len" })
        {
            foreach (var (spelling, value) in RequestSpellings.Counts)
            {
                var parsed = Root.Parse(Compress(option, spelling));
                Assert.Empty(parsed.Errors);
                Assert.Equal(value, parsed.GetValue<int?>(option));
            }
            foreach (var bad in RequestSpellings.BadCounts) AssertRejected(ErrorCodes.BadArgument, "--method", "svd", "--ratio", "0.4", option, bad);
        }
    }

    [Fact]
    public void Device_spellings_are_those_of_the_item()
    {
        foreach (var (spelling, canonical) in RequestSpellings.Devices)
        {
            var parsed = Root.Parse(["compress", "model", "-o", "out", "--method", "svd", "--ratio", "0.4", "--device", spelling]);
            Assert.Empty(parsed.Errors);
            Assert.Equal(canonical, parsed.GetValue<DeviceRequest>("--device").Name());
        }
        foreach (var bad in RequestSpellings.BadDevices) AssertRejected(ErrorCodes.UnknownDevice, "--method", "svd", "--ratio", "0.4", "--device", bad);
    }

    /// <summary><c>bench quant --factor-dtypes</c> takes a comma list of the same spellings, parsed by the option into
    /// storages (the benchmark never reads the strings again); one bad entry fails the parse.</summary>
    [Fact]
    public void Bench_quant_factor_dtypes_are_the_same_spellings_parsed_once()
    {
        string[] Quant(string list) => ["bench", "quant", "model", "--calib", "c.txt", "--eval", "e.txt", "--factor-dtypes", list];
        var parsed = Root.Parse(Quant(string.Join(",", RequestSpellings.FactorDtypes.Select(d => d.Spelling))));
        Assert.Empty(parsed.Errors);
        Assert.Equal(RequestSpellings.FactorDtypes.Select(d => d.Canonical),
            parsed.GetValue<IReadOnlyList<FactorStorage>>("--factor-dtypes")!.Select(s => s.Canonical));
        var defaults = Root.Parse(["bench", "quant", "model", "--calib", "c.txt", "--eval", "e.txt"]);
        Assert.Equal(["fp16", "int8", "int4"], defaults.GetValue<IReadOnlyList<FactorStorage>>("--factor-dtypes")!.Select(s => s.Canonical));
        foreach (var bad in RequestSpellings.BadFactorDtypes)
        {
            var errors = Root.Parse(Quant("fp16, " + bad)).Errors.Select(e => e.Message).ToArray();
            Assert.True(errors.Any(e => e.StartsWith(ErrorCodes.BadArgument + ":", StringComparison.Ordinal) && e.Contains(bad, StringComparison.Ordinal)),
                $"{bad}: {string.Join("; ", errors)}");
        }
    }

    /// <summary>What the MSBuild task renders (<see cref="CompressionRequest.ToArguments"/>) is what compress parses: every
    /// knob of the request comes back as the same typed value.</summary>
    [Fact]
    public void The_items_command_line_parses_back_into_the_same_request()
    {
        var request = new CompressionRequest
        {
            Method = CompressionMethod.AdaSvd, Ratio = 0.25, Samples = 64, SeqLen = 128, Seed = 7, FactorDtype = "int4-g64-zp",
            Formats = ModelFormats.Parse("onnx;safetensors"), Calibration = "calib.txt", CalibrationStart = 10, CalibrationEnd = 2000, Device = DeviceRequest.Cpu,
            ToolArguments = ["--set", "AdaSvdIterations=3"],
        };
        var parsed = Root.Parse(["compress", "model", .. request.ToArguments(), "-o", "out"]);
        Assert.Empty(parsed.Errors);
        Assert.Equal(request.Method, parsed.GetValue<CompressionMethod>("--method"));
        Assert.Equal(request.Ratio, parsed.GetValue<double?>("--ratio"));
        Assert.Equal(request.Samples, parsed.GetValue<int>("--samples"));
        Assert.Equal(request.SeqLen, parsed.GetValue<int?>("--seq-len"));
        Assert.Equal(request.Seed, parsed.GetValue<int>("--seed"));
        Assert.Equal(request.FactorDtype, parsed.GetValue<FactorStorage?>("--factor-dtype")?.Canonical);
        Assert.Equal(request.Formats, parsed.GetValue<ModelFormats>("--format"));
        Assert.Equal(request.Calibration, parsed.GetValue<string?>("--calib"));
        Assert.Equal(request.CalibrationStart, parsed.GetValue<long?>("--calib-start"));
        Assert.Equal(request.CalibrationEnd, parsed.GetValue<long?>("--calib-end"));
        Assert.Equal(request.Device, parsed.GetValue<DeviceRequest>("--device"));
        Assert.Equal(["AdaSvdIterations=3"], parsed.GetValue<string[]>("--set")!);
    }
}
