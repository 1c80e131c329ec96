using LowRank.Quantization;
using LowRank.Torch;
using TorchSharp;
using static LowRank.Tests.TestSupport.MathFixtures;
using static TorchSharp.torch;

namespace LowRank.Tests.Quantization;

/// <summary>Packing, the int8/int4/int3 grids, RTN, GPTQ and the factor quantizer on seeded fp64 tensors (CPU; about a
/// second in all).</summary>
public sealed class QuantizerTests
{
    public QuantizerTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [Theory]
    [InlineData(3, 32)]
    [InlineData(3, 128)]
    [InlineData(4, 64)]
    [InlineData(8, 16)]
    public void Pack_and_unpack_round_trip(int bits, long run)
    {
        using var scope = NewDisposeScope();
        var codes = randint(0, 1 << bits, [5, 3, run], dtype: ScalarType.Byte, generator: new Generator(7));
        var packed = BitPacking.Pack(codes, bits);
        Assert.Equal(new long[] { 5, 3, run * bits / 8 }, packed.shape);
        Assert.True(BitPacking.Unpack(packed, bits).eq(codes).all().item<bool>());
    }

    [Fact]
    public void Four_bit_codes_go_low_nibble_first_and_three_bit_codes_form_a_little_endian_bit_stream()
    {
        using var scope = NewDisposeScope();
        var four = BitPacking.Pack(tensor(new byte[] { 1, 2, 15, 0 }).reshape(1, 4), 4);
        Assert.Equal(new byte[] { 0x21, 0x0F }, four.data<byte>().ToArray());
        // 8 codes of 3 bits are the 24-bit little-endian number Σ c_i·2^(3i), in three bytes.
        byte[] codes = [1, 2, 3, 4, 5, 6, 7, 0];
        var number = codes.Select((c, i) => (long)c << (3 * i)).Sum();
        var three = BitPacking.Pack(tensor(codes).reshape(1, 8), 3);
        Assert.Equal(new[] { (byte)number, (byte)(number >> 8), (byte)(number >> 16) }, three.data<byte>().ToArray());
        // Rows of zero points: 3 codes of 3 bits fill 2 bytes, the rest zero bits.
        var row = BitPacking.PackRows(tensor(new byte[] { 5, 2, 7 }).reshape(1, 3), 3);
        Assert.Equal(new byte[] { 5 | 2 << 3 | (7 & 3) << 6, 7 >> 2 }, row.data<byte>().ToArray());
        Assert.Equal(new byte[] { 5, 2, 7 }, BitPacking.UnpackRows(row, 3, 3).data<byte>().ToArray());
    }

    [Theory]
    [InlineData("int4-g32", 70)]
    [InlineData("int4-g128-zp", 200)]
    [InlineData("int3-g64-zp", 129)]
    [InlineData("int3-g32", 32)]
    [InlineData("int8", 33)]
    public void Stored_matrices_round_trip_their_codes_scales_and_zero_points(string spelling, long cols)
    {
        using var scope = NewDisposeScope();
        var format = QuantFormat.Parse(spelling);
        const long rows = 6;
        var groups = format.Groups(cols);
        var codes = format.PerChannel
            ? randint(-127, 128, [rows, cols], dtype: ScalarType.Int64, generator: new Generator(3))
            : randint(0, format.MaxCode + 1, [rows, cols], dtype: ScalarType.Int64, generator: new Generator(3));
        var scales = (rand([rows, groups], dtype: ScalarType.Float64, generator: new Generator(4)) + 0.5).to(ScalarType.Float16).to(ScalarType.Float64);
        var zeros = format.ZeroPoints ? randint(0, format.MaxCode + 1, [rows, groups], dtype: ScalarType.Int64, generator: new Generator(5)) : null;
        using var matrix = QuantizedMatrix.FromCodes(format, codes, format.PerChannel ? scales.squeeze(1) : scales, zeros);
        Assert.Equal(format.StorageBytes(rows, cols), matrix.Named("w").Sum(t => t.Tensor.NumberOfElements * t.Tensor.ElementSize));
        Assert.Equal(QuantizedMatrix.Layout("w", format, rows, cols).Select(l => (l.Name, l.Dtype, string.Join(",", l.Shape))),
            matrix.Named("w").Select(t => (t.Name, t.Tensor.dtype, string.Join(",", t.Tensor.shape))));
        Assert.True(matrix.UnpackedCodes().eq(codes).all().item<bool>());
        var zeroCodes = matrix.ZeroCodes();
        if (zeros is not null) Assert.True(zeroCodes.eq(zeros).all().item<bool>());
        // Dequantization is (c − z)·s column by column.
        var groupOf = arange(cols, dtype: ScalarType.Int64).div(format.PerChannel ? cols : format.GroupSize, RoundingMode.floor);
        var expected = (codes.to(ScalarType.Float64) - zeroCodes.index_select(1, format.PerChannel ? zeros_like(groupOf) : groupOf))
            * scales.index_select(1, format.PerChannel ? zeros_like(groupOf) : groupOf);
        Assert.True(matrix.Dequantize(ScalarType.Float64).sub(expected).abs().max().item<double>() == 0);
        // Read back from stored tensors (as the loader does), the same values.
        var stored = matrix.Named("w").Select(t => t.Tensor.clone()).ToArray();
        using var reread = QuantizedMatrix.FromStored("w", format, rows, cols, stored[0], stored[1], stored.Length > 2 ? stored[2] : null);
        Assert.True(reread.Dequantize(ScalarType.Float64).eq(matrix.Dequantize(ScalarType.Float64)).all().item<bool>());
    }

    [Fact]
    public void Stored_tensors_of_the_wrong_shape_are_refused_with_an_artifact_error()
    {
        using var scope = NewDisposeScope();
        var error = Assert.Throws<LrkException>(() => QuantizedMatrix.FromStored("x.qweight", QuantFormat.Parse("int4-g32"), 4, 64,
            zeros([4, 2, 8], dtype: ScalarType.Byte), zeros([4, 2], dtype: ScalarType.Float16), null));
        Assert.Equal(ErrorCodes.BadArtifact, error.Code);
    }

    [Fact]
    public void Int8_error_is_within_what_per_channel_8_bit_rounding_allows()
    {
        using var scope = NewDisposeScope();
        // Rows of very different magnitudes: each gets its own scale s = max|w_row| / 127.
        var w = Randn(64, 300, 21) * logspace(-2, 1, 64, dtype: ScalarType.Float64).unsqueeze(1);
        using var q = Rtn.Quantize(w, QuantFormat.Int8);
        var s = q.Scales.to(ScalarType.Float64);
        var rowMax = w.abs().amax([1]);
        // The stored scale is max|w|/127 rounded up to an fp16 value (at most one fp16 step, relative 2^-10, above).
        var relative = s / (rowMax / 127) - 1;
        Assert.True(relative.min().item<double>() >= 0 && relative.max().item<double>() <= Math.Pow(2, -10));
        var error = w - q.Dequantize(ScalarType.Float64);
        // Every element within half a step of its row's grid …
        Assert.True((error.abs() - s.unsqueeze(1) / 2).max().item<double>() <= 1e-15);
        // … and the error energy that of uniform rounding noise, s²/12 per element (±10%).
        var theory = (s.square() / 12 * w.shape[1]).sum().item<double>();
        var measured = error.square().sum().item<double>();
        Assert.InRange(measured / theory, 0.9, 1.1);
        // Relative to the weight: about 1/(127·√3·peak-to-rms) — far below 1% for Gaussian rows.
        Assert.True(Norm(error) / Norm(w) < 0.01);
    }

    [Theory]
    [InlineData("int4-g32")]
    [InlineData("int4-g64-zp")]
    [InlineData("int3-g128")]
    [InlineData("int3-g32-zp")]
    public void Round_to_nearest_stays_within_half_a_step_of_each_group(string spelling)
    {
        using var scope = NewDisposeScope();
        var format = QuantFormat.Parse(spelling);
        var w = Randn(16, 200, 5);
        using var q = Rtn.Quantize(w, format);
        var groupOf = arange(200, dtype: ScalarType.Int64).div(format.GroupSize, RoundingMode.floor);
        var step = q.Scales.to(ScalarType.Float64).index_select(1, groupOf);
        var error = (w - q.Dequantize(ScalarType.Float64)).abs();
        Assert.True((error - step / 2).max().item<double>() <= 1e-12);
        var codes = q.UnpackedCodes();
        Assert.True(codes.min().item<long>() >= 0 && codes.max().item<long>() <= format.MaxCode);
    }

    [Theory]
    [InlineData("int8", 1UL)]
    [InlineData("int4-g32", 2UL)]
    [InlineData("int4-g128-zp", 3UL)]
    [InlineData("int3-g64-zp", 4UL)]
    [InlineData("int3-g128", 5UL)]
    public void Gptq_is_never_worse_than_round_to_nearest_on_the_calibration_objective(string spelling, ulong seed)
    {
        using var scope = NewDisposeScope();
        var format = QuantFormat.Parse(spelling);
        // LLM-like inputs: channels of very different scales sharing a few strong directions.
        var x = Inputs(192, 1024, seed) + 2 * matmul(Randn(192, 6, seed + 50), Randn(6, 1024, seed + 51));
        var h = matmul(x, x.T);
        var w = Weight(48, 192, seed + 10);
        using var rtn = Rtn.Quantize(w, format);
        using var gptq = Gptq.Quantize(w, h, format);
        var rtnObjective = QuantObjective.Of(w - rtn.Dequantize(ScalarType.Float64), h);
        var gptqObjective = QuantObjective.Of(w - gptq.Dequantize(ScalarType.Float64), h);
        Assert.True(gptqObjective <= rtnObjective, $"GPTQ {gptqObjective:E3} > RTN {rtnObjective:E3}");
        // With correlated inputs the compensation is worth a lot (the paper's premise).
        Assert.True(gptqObjective < 0.8 * rtnObjective, $"GPTQ {gptqObjective:E3} vs RTN {rtnObjective:E3}");
        var codes = gptq.UnpackedCodes();
        Assert.True(codes.min().item<long>() >= (format.PerChannel ? -127 : 0) && codes.max().item<long>() <= (format.PerChannel ? 127 : format.MaxCode));
    }

    [Fact]
    public void Gptq_handles_channels_that_never_fire()
    {
        using var scope = NewDisposeScope();
        var x = Inputs(64, 256, 9);
        x[TensorIndex.Slice(10, 14)] = tensor(0.0);
        var h = matmul(x, x.T);
        var w = Weight(16, 64, 3);
        using var q = Gptq.Quantize(w, h, QuantFormat.Parse("int4-g32"));
        var deq = q.Dequantize(ScalarType.Float64);
        Assert.True(deq.isfinite().all().item<bool>());
        Assert.True(deq[.., TensorIndex.Slice(10, 14)].abs().max().item<double>() == 0);
    }

    [Theory]
    [InlineData("int8")]
    [InlineData("int4-g32")]
    [InlineData("int4-g64-zp")]
    public void Factor_gptq_compensates_the_first_factor_in_the_second_and_beats_round_to_nearest(string spelling)
    {
        using var scope = NewDisposeScope();
        var format = QuantFormat.Parse(spelling);
        var x = Inputs(128, 1024, 31);
        var h = matmul(x, x.T);
        var w = Weight(96, 128, 32);
        // SVD-LLM-like factors: truncation of the whitened weight.
        var l = linalg.cholesky(h);
        var (u, sv, vh) = linalg.svd(matmul(w, l), fullMatrices: false);
        const long rank = 40;
        var a = u[.., ..(int)rank] * sv[..(int)rank].sqrt().unsqueeze(0);
        var b = linalg.solve(l.T, (sv[..(int)rank].sqrt().unsqueeze(1) * vh[..(int)rank]).T).T;
        var lowRank = QuantObjective.Of(w - matmul(a, b), h);
        using var rtn = FactorQuantizer.Quantize(a, b, format, Quantizer.Rtn);
        using var gptq = FactorQuantizer.Quantize(a, b, format, Quantizer.Gptq, h, w);
        var rtnExcess = QuantObjective.Of(w - rtn.Product(), h) - lowRank;
        var gptqExcess = QuantObjective.Of(w - gptq.Product(), h) - lowRank;
        Assert.True(gptqExcess < rtnExcess, $"GPTQ adds {gptqExcess:E3} to the truncation's {lowRank:E3}, RTN {rtnExcess:E3}");
        // The objective splits into the refit's part and GPTQ's objective for A on G = B̂ H B̂ᵀ.
        var bq = gptq.B.Dequantize(ScalarType.Float64);
        var g = matmul(matmul(bq, h), bq.T);
        var refit = linalg.solve(g, matmul(matmul(w, h), bq.T).T).T;
        var split = QuantObjective.Of(w - matmul(refit, bq), h) + QuantObjective.Of(refit - gptq.A.Dequantize(ScalarType.Float64), g);
        Assert.Equal(1.0, split / QuantObjective.Of(w - gptq.Product(), h), 6);
    }

    [Theory]
    [InlineData("int8", 8, 0, false)]
    [InlineData("int4", 4, 128, false)]
    [InlineData("INT4-g64-zp", 4, 64, true)]
    [InlineData("int3-g32", 3, 32, false)]
    public void Formats_parse_and_print_canonically(string text, int bits, int group, bool zeroPoints)
    {
        var format = QuantFormat.Parse(text);
        Assert.Equal((bits, group, zeroPoints), (format.Bits, format.GroupSize, format.ZeroPoints));
        Assert.Equal(format, QuantFormat.Parse(format.ToString()));
    }

    [Theory]
    [InlineData("int8-g64")]
    [InlineData("int4-g48")]
    [InlineData("int2")]
    [InlineData("fp16")]
    public void Bad_formats_are_refused(string text) =>
        Assert.Equal(ErrorCodes.BadArgument, Assert.Throws<LrkException>(() => QuantFormat.Parse(text)).Code);
}
