using System.Text.Json.Nodes;
using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Evaluation;
using LowRank.Jobs;
using LowRank.Models;
using LowRank.Quantization;
using LowRank.Tests.Models;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Quantization;

/// <summary>
/// Quantized artifacts end to end on the committed self-trained models (calibrated on the README, 8 × 64 tokens):
/// the perplexity measured in memory right after quantization, on the artifact loaded back, and on its dense export
/// agree; the stored tensors follow the documented layout. A few seconds per case.
/// </summary>
public sealed class QuantizedArtifactTests
{
    public QuantizedArtifactTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    /// <summary>A held-out stretch of the README for perplexity (calibration reads it all; this only compares paths).</summary>
    private static TextPerplexitySpec Held => new() { Text = RepoPaths.Readme, ByteStart = 0, ByteEnd = 8_000, WindowLength = 128 };

    private static CompressionJobOptions Job(string model, string output, CompressionOptions options, QuantFormat? factors = null) =>
        ReadmeJob.For(model, output, options) with { FactorFormat = factors, Evaluation = Held };

    private static double Perplexity(string folder)
    {
        using var loaded = ModelLoader.Load(folder, new ModelLoadOptions { Device = DeviceRequest.Cpu });
        var (source, tokens) = TextPerplexity.Encode(loaded.Tokenizer!, Held);
        return TextPerplexity.Measure(loaded.Model, source, tokens, Held).Perplexity.Perplexity;
    }

    /// <summary>Every quantized artifact evaluates to the same perplexity through the engine that made it (in memory),
    /// loaded back from disk (bit-identical dequantization: 1e-9), and as a dense fp32 export (W = Â·B̂ in fp64, rounded
    /// to fp32: 1e-5 relative).</summary>
    [Theory]
    [InlineData("llama-moby", "svd-llm", "int4-g32")]
    [InlineData("gpt2-moby", "svd-llm", "int8")]
    [InlineData("opt-moby", "gptq", "int3-g64-zp")]
    [InlineData("gpt2-moby", "rtn", "int4-g128-zp")]
    public void Quantized_artifact_has_one_perplexity_in_memory_on_disk_and_as_a_dense_export(string model, string method, string format)
    {
        using var temp = new TempFolder();
        var output = temp.File("quantized");
        var parsed = QuantFormat.Parse(format);
        var compression = CompressionMethods.Parse(method) is var m && m.IsQuantizationOnly()
            ? new CompressionOptions { Method = m, Ratio = 0, Bits = parsed.Bits, GroupSize = parsed.PerChannel ? 128 : parsed.GroupSize, ZeroPoints = parsed.ZeroPoints, BatchSize = 4 }
            : new CompressionOptions { Method = m, Ratio = 0.4, BatchSize = 4, ZeroPoints = parsed.ZeroPoints };
        var result = CompressionJob.Run(Job(model, output, compression, m.IsQuantizationOnly() ? null : parsed));

        var report = result.Report.Quantization!;
        Assert.Equal(format, report.Format);
        Assert.All(report.Modules, q => Assert.Equal(!m.IsQuantizationOnly(), q.Factorized));
        Assert.All(report.Modules, q => Assert.True(q.Objective <= q.RtnObjective || q.RtnObjective is null));
        Assert.True(ArtifactVerifier.Verify(output).Ok);

        var inMemory = result.Evaluation!.After.Perplexity.Perplexity;
        var onDisk = Perplexity(output);
        Assert.Equal(1.0, onDisk / inMemory, 9);

        var dense = temp.File("dense");
        DenseExporter.Export(output, dense, new DenseExportOptions { Dtype = FactorDtype.Float32 });
        Assert.Equal(1.0, Perplexity(dense) / inMemory, 5);

        // The section records what was stored, and the bytes agree with the format's accounting.
        var section = LowRankSection.Read(output)!;
        Assert.Equal(2, section.FormatVersion);
        Assert.Equal(report.Modules.Count, section.Quantization!.Linears.Count);
        Assert.Equal(report.Bytes, section.Quantization.Linears.Sum(p => m.IsQuantizationOnly()
            ? p.Value.Format.StorageBytes(p.Value.OutFeatures, p.Value.InFeatures)
            : p.Value.Format.StorageBytes(p.Value.OutFeatures, section.TruncationRanks[p.Key]) + p.Value.Format.StorageBytes(section.TruncationRanks[p.Key], p.Value.InFeatures)));
        Assert.Equal(section.LinearBytes!.BitsPerWeight, 8.0 * section.LinearBytes.After / section.Parameters.CompressedLinearsBefore, 5);
        Assert.Equal(m.IsQuantizationOnly() ? section.Parameters.CompressedLinearsBefore : section.Parameters.CompressedLinearsAfter,
            section.Parameters.CompressedLinearsAfter);
    }

    /// <summary><c>--target-bits</c>: the stored bits per weight never exceed the budget and are what the allocation
    /// planned; the artifact evaluates as the model in memory did.</summary>
    [Fact]
    public void Target_bits_allocation_stays_within_the_budget_and_stores_what_it_planned()
    {
        using var temp = new TempFolder();
        var output = temp.File("allocated");
        var result = CompressionJob.Run(Job("llama-moby", output,
            new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0, TargetBits = 3.5, BatchSize = 4, GroupSize = 32 }));
        var allocation = result.Report.Allocation!;
        var section = LowRankSection.Read(output)!;
        Assert.True(allocation.PlannedBits <= 3.5, $"planned {allocation.PlannedBits}");
        Assert.Equal(allocation.PlannedBits, section.LinearBytes!.BitsPerWeight, 5);
        Assert.Equal(28, allocation.Choices.Count);
        // Every linear is stored as chosen: quantized factors at the chosen rank, or a quantized (or fp16) dense weight.
        foreach (var (name, choice) in allocation.Choices)
        {
            var format = allocation.Formats[name];
            if (choice.StartsWith("rank ", StringComparison.Ordinal))
                Assert.Equal(long.Parse(choice.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture), section.TruncationRanks[name]);
            else Assert.False(section.TruncationRanks.ContainsKey(name));
            Assert.Equal(format, section.Quantization!.Linears.TryGetValue(name, out var q) ? q.Format.ToString() : null);
        }
        Assert.Equal(1.0, Perplexity(output) / result.Evaluation!.After.Perplexity.Perplexity, 9);

        Assert.Equal(ErrorCodes.BadMethodOption, Assert.Throws<LrkException>(() =>
            new CompressionOptions { Method = CompressionMethod.AdaSvd, Ratio = 0, TargetBits = 3 }.Validate()).Code);
        Assert.Equal(ErrorCodes.BadRatio, Assert.Throws<LrkException>(() =>
            new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.4, TargetBits = 3 }.Validate()).Code);
    }

    [Fact]
    public void Quantized_factors_are_stored_in_the_documented_layout()
    {
        using var temp = new TempFolder();
        var output = temp.File("quantized");
        var format = QuantFormat.Parse("int4-g32-zp");
        CompressionJob.Run(Job("llama-moby", output, new CompressionOptions { Method = CompressionMethod.Svd, Ratio = 0.4 }, format) with
        {
            Compression = new CompressionOptions { Method = CompressionMethod.Svd, Ratio = 0.4, FactorQuantizer = Quantizer.Rtn, ZeroPoints = false },
            Evaluation = null,
        });
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["lowrank"]!;
        Assert.Equal(2, config["format_version"]!.GetValue<int>());
        Assert.Equal("rtn", config["quantization"]!["quantizer"]!.GetValue<string>());
        Assert.Equal("int4-g32-zp", config["quantization"]!["format"]!.GetValue<string>());
        var manifest = ArtifactManifest.Read(output);
        Assert.Equal(2, manifest.FormatVersion);
        Assert.Equal("int4-g32-zp", manifest.Method.FactorDtype);

        using var store = TensorStore.Open(output);
        const string linear = "model.layers.0.mlp.down_proj";
        var rank = config["truncation_ranks"]![linear]!.GetValue<long>();
        // down_proj: [128, 352] → A [128, k], B [k, 352]; groups of 32 along each row's input dimension.
        Assert.False(store.Contains(linear + ".weight"));
        Assert.False(store.Contains(linear + ".lowrank_A.weight"));
        Assert.Equal(new long[] { 128, (rank + 31) / 32, 16 }, store.Info(linear + ".lowrank_A.qweight").Shape);
        Assert.Equal("U8", store.Info(linear + ".lowrank_A.qweight").Dtype);
        Assert.Equal(new long[] { 128, (rank + 31) / 32 }, store.Info(linear + ".lowrank_A.scales").Shape);
        Assert.Equal("F16", store.Info(linear + ".lowrank_A.scales").Dtype);
        Assert.Equal(new long[] { 128, ((rank + 31) / 32 * 4 + 7) / 8 }, store.Info(linear + ".lowrank_A.qzeros").Shape);
        Assert.Equal(new long[] { rank, 11, 16 }, store.Info(linear + ".lowrank_B.qweight").Shape);
        Assert.Equal(new long[] { rank, 11 }, store.Info(linear + ".lowrank_B.scales").Shape);
        Assert.Equal(new long[] { rank, 6 }, store.Info(linear + ".lowrank_B.qzeros").Shape);
        // Decoding the stored bytes by the README's rule gives the model's factor.
        using var loaded = ModelLoader.Load(output, new ModelLoadOptions { Device = DeviceRequest.Cpu });
        var b = loaded.Model.BlockLinears(0).Single(l => l.Name == linear).QuantizedB!;
        using var scope = NewDisposeScope();
        var codes = store.Load(linear + ".lowrank_B.qweight");
        var unpacked = stack([codes.bitwise_and(15), codes.bitwise_right_shift(4)], -1).reshape(rank, 11 * 32)[.., ..352].to(ScalarType.Float64);
        var zeroBytes = store.Load(linear + ".lowrank_B.qzeros");
        var zeros = stack([zeroBytes.bitwise_and(15), zeroBytes.bitwise_right_shift(4)], -1).reshape(rank, 12)[.., ..11].to(ScalarType.Float64);
        var group = arange(352, dtype: ScalarType.Int64).div(32, RoundingMode.floor);
        var scales = store.Load(linear + ".lowrank_B.scales").to(ScalarType.Float64);
        var decoded = (unpacked - zeros.index_select(1, group)) * scales.index_select(1, group);
        Assert.Equal(0, (decoded - b.Dequantize(ScalarType.Float64)).abs().max().item<double>());
    }

    [Fact]
    public void Bits_and_factor_formats_are_checked_before_anything_runs()
    {
        Assert.Equal(ErrorCodes.BadMethodOption, Assert.Throws<LrkException>(() =>
            new CompressionOptions { Method = CompressionMethod.Gptq, Ratio = 0 }.Validate()).Code);
        Assert.Equal(ErrorCodes.BadMethodOption, Assert.Throws<LrkException>(() =>
            new CompressionOptions { Method = CompressionMethod.Gptq, Ratio = 0, Bits = 5 }.Validate()).Code);
        Assert.Equal(ErrorCodes.BadMethodOption, Assert.Throws<LrkException>(() =>
            new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.4, Bits = 4 }.Validate()).Code);
        Assert.Equal(ErrorCodes.BadRatio, Assert.Throws<LrkException>(() =>
            new CompressionOptions { Method = CompressionMethod.Rtn, Ratio = 0.4, Bits = 4 }.Validate()).Code);
        using var temp = new TempFolder();
        Assert.Equal(ErrorCodes.BadArgument, Assert.Throws<LrkException>(() => CompressionJob.Run(Job("llama-moby", temp.File("x"),
            new CompressionOptions { Method = CompressionMethod.Gptq, Ratio = 0, Bits = 4 }, QuantFormat.Int8))).Code);
        Assert.False(Directory.Exists(temp.File("x")));
        // int4 alone takes the run's group size and zero-point choice; a spelling that names them wins.
        var options = new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.4, GroupSize = 64 };
        static FactorStorage Storage(string spelling) => FactorStorage.Parse(spelling, "--factor-dtype", ErrorCodes.BadArgument);
        Assert.Equal(QuantFormat.Parse("int4-g64-zp"), options.FactorFormat(Storage("int4")));
        Assert.Equal(QuantFormat.Parse("int4-g32-zp"), options.FactorFormat(Storage("int4-g32")));
        Assert.Equal(QuantFormat.Parse("int4-g32"), (options with { ZeroPoints = false }).FactorFormat(Storage("int4-g32")));
        Assert.Equal(QuantFormat.Parse("int3-g128-zp"), (options with { GroupSize = 128, ZeroPoints = false }).FactorFormat(Storage("int3-zp")));
        Assert.Equal(QuantFormat.Int8, options.FactorFormat(Storage("int8")));
        Assert.Equal(QuantFormat.Parse("int4-g128-zp"), new CompressionOptions { Method = CompressionMethod.Gptq, Ratio = 0, Bits = 4 }.WeightFormat);
    }
}
