using LowRank.Cache;
using LowRank.Compression;

namespace LowRank.Tests.Compression;

public class CompressionRequestTests
{
    private static CompressionRequest Request(CompressionMethod method = CompressionMethod.SvdLlm, double ratio = 0.4, string? factorDtype = "fp16") => new()
    {
        Method = method,
        Ratio = ratio,
        Samples = 64,
        SeqLen = 128,
        Seed = 7,
        FactorDtype = factorDtype,
        ToolArguments = ["--set", "AdaSvdIterations=3"],
    };

    /// <summary>Keys made before the request type existed (CacheKey.Create at a83d27a): canonical requests must keep them,
    /// or every entry already in users' caches would miss.</summary>
    [Fact]
    public void Canonical_requests_keep_the_keys_they_had_before()
    {
        Assert.Equal("ccbc4b453ba105fda981251baaae9bcbfd7e60503e8f485212253b62b79bb145",
            Request().Key("sha256:abc", "sha256:def", "1.2.3+abc").Hash);
        Assert.Equal("ecf8e0b8db008a7dd1c5c71d03f999947d16c6b450557c8321fce046d5f4daa4",
            new CompressionRequest { Method = CompressionMethod.Svd, Ratio = 0.2 }.Key("sha256:abc", null, "1.2.3+abc").Hash);
        Assert.Equal("06de94976426b3cf5c9a10b6830d5de89e5d83c16a82aee23534ffb7398207a7",
            new CompressionRequest { Method = CompressionMethod.AdaSvd, Ratio = 0.25, FactorDtype = "int4-g64-zp", Formats = ModelFormats.Parse("safetensors;onnx") }
                .Key("sha256:abc", "sha256:def", "1.2.3+abc").Hash);
        // CacheKey.Create (positional) is the same key.
        Assert.Equal(Request().Key("s", "c", "t").Hash,
            CacheKey.Create("SVD_LLM", 0.4, "s", "c", 64, 128, 7, "half", "t", ["--set", "AdaSvdIterations=3"]).Hash);
    }

    [Fact]
    public void Every_method_spelling_parses_to_its_key_and_bad_ones_fail_with_LRK_code()
    {
        foreach (var (spelling, canonical) in RequestSpellings.Methods)
            Assert.Equal(canonical, CompressionMethods.Parse(spelling).Key());
        foreach (var bad in RequestSpellings.BadMethods)
            Assert.Equal(ErrorCodes.UnknownMethod, Assert.Throws<LrkException>(() => CompressionMethods.Parse(bad)).Code);
        // Every key and display name of the table parses back to its own row.
        foreach (var row in CompressionMethods.Table)
        {
            Assert.Equal(row.Method, CompressionMethods.Parse(row.Key));
            Assert.Equal(row.Method, CompressionMethods.Parse(row.DisplayName));
        }
    }

    [Fact]
    public void Factor_dtype_spellings_of_one_dtype_give_one_key()
    {
        foreach (var (spelling, canonical) in RequestSpellings.FactorDtypes)
        {
            Assert.Equal(canonical, FactorDtypeNames.Canonical(spelling, "FactorDtype", ErrorCodes.BadItem));
            Assert.Equal(Request(factorDtype: canonical).Key("s", "c", "t").Hash,
                CacheKey.Create("svd-llm", 0.4, "s", "c", 64, 128, 7, spelling, "t", ["--set", "AdaSvdIterations=3"]).Hash);
        }
        foreach (var bad in RequestSpellings.BadFactorDtypes)
            Assert.Equal(ErrorCodes.BadItem, Assert.Throws<LrkException>(() => FactorDtypeNames.Canonical(bad, "FactorDtype", ErrorCodes.BadItem)).Code);
        // Distinct dtypes stay distinct keys.
        Assert.Equal(RequestSpellings.FactorDtypes.Select(d => d.Canonical).Distinct().Count(),
            RequestSpellings.FactorDtypes.Select(d => Request(factorDtype: d.Canonical).Key("s", "c", "t").Hash).Distinct().Count());
    }

    [Fact]
    public void Ratios_parse_with_a_dot_in_every_culture_inside_the_open_unit_interval()
    {
        var culture = System.Globalization.CultureInfo.CurrentCulture;
        try
        {
            System.Globalization.CultureInfo.CurrentCulture = new System.Globalization.CultureInfo("de-DE");
            foreach (var (spelling, value) in RequestSpellings.Ratios)
                Assert.Equal(value, CompressionRatio.Parse(spelling, "Ratio"));
            foreach (var bad in RequestSpellings.BadRatios)
                Assert.Equal(ErrorCodes.BadRatio, Assert.Throws<LrkException>(() => CompressionRatio.Parse(bad, "Ratio")).Code);
        }
        finally
        {
            System.Globalization.CultureInfo.CurrentCulture = culture;
        }
        Assert.Equal(ErrorCodes.BadRatio, Assert.Throws<LrkException>(() => CompressionRatio.Validate(1.0)).Code);
    }

    [Fact]
    public void Arguments_render_every_set_value_in_the_tools_spelling()
    {
        var request = Request() with { Calibration = "npm:moby-dick", CalibrationStart = 10, CalibrationEnd = 2000, Device = DeviceRequest.Cpu, Formats = ModelFormats.Parse("onnx") };
        Assert.Equal(
            ["--method", "svd-llm", "--ratio", "0.4", "--calib", "npm:moby-dick", "--calib-start", "10", "--calib-end", "2000",
             "--samples", "64", "--seq-len", "128", "--seed", "7", "--device", "cpu", "--factor-dtype", "fp16", "--format", "onnx",
             "--set", "AdaSvdIterations=3"],
            request.ToArguments());
        Assert.Equal(["--method", "svd", "--ratio", "0.2"], new CompressionRequest { Method = CompressionMethod.Svd, Ratio = 0.2 }.ToArguments());
        // Calibration offsets without calibration text are not passed on (the tool would reject them).
        Assert.Equal(["--method", "svd", "--ratio", "0.2"], new CompressionRequest { Method = CompressionMethod.Svd, Ratio = 0.2, CalibrationStart = 5 }.ToArguments());
    }

    [Fact]
    public void The_key_holds_no_path_and_no_device()
    {
        var a = Request() with { Calibration = "/home/a/text.txt", Device = DeviceRequest.Cuda };
        var b = Request() with { Calibration = "/home/b/other.txt", Device = DeviceRequest.Cpu };
        Assert.Equal(a.Key("s", "c", "t").Hash, b.Key("s", "c", "t").Hash);
    }
}
