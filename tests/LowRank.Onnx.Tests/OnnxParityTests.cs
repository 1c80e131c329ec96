using LowRank.Compression;
using LowRank.Jobs;
using LowRank.Models;
using LowRank.Onnx.Graphs;
using LowRank.Onnx.Proto;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Onnx.Tests;

/// <summary>
/// Every family's parity fixture (tests/fixtures/parity), dense and compressed (SVD at ratio 0.4, a real artifact),
/// exported to ONNX and run by ONNX Runtime's CPU provider: the logits equal our TorchSharp forward's to 1e-4 of the
/// logit scale (max |logit|), KV-cache decoding step by step equals the full-sequence logits, and every factorised
/// linear is two MatMuls of inner dimension k in the file. About 2 s per fixture.
/// </summary>
public sealed class OnnxParityTests
{
    /// <summary>fp32: max |ORT − TorchSharp| / max |TorchSharp logit|.</summary>
    private const double Tolerance = 1e-4;

    private readonly ITestOutputHelper output;

    public OnnxParityTests(ITestOutputHelper output)
    {
        this.output = output;
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private static float[] TorchLogits(string folder, long[][] ids)
    {
        using var loaded = ModelLoader.Load(folder, new ModelLoadOptions { Device = DeviceRequest.Cpu, LoadTokenizer = false });
        using var scope = NewDisposeScope();
        using var input = tensor(ids.SelectMany(r => r).ToArray(), [ids.Length, ids[0].Length]);
        return loaded.Model.Logits(input).data<float>().ToArray();
    }

    private static OnnxDecoder Decoder(OnnxExportResult export, int batch)
    {
        var config = ModelConfigReader.Read(export.Folder);
        var graph = OnnxExporter.CreateGraph(config, new MemoryExportWeights(), OnnxDtype.Float);
        return new OnnxDecoder(Path.Combine(export.Folder, OnnxExporter.ModelFileName), config.NumLayers, graph.KvHeads, graph.HeadDim, batch);
    }

    /// <summary>(max |a − b|, max |b|).</summary>
    private static (double MaxDiff, double Scale) Compare(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, scale = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }
        return (diff, scale);
    }

    private void CheckLogits(string label, OnnxExportResult export, string torchFolder, long[][] ids)
    {
        var expected = TorchLogits(torchFolder, ids);
        using var decoder = Decoder(export, ids.Length);
        var full = decoder.Step(ids);
        var (diff, scale) = Compare(full, expected);
        output.WriteLine($"{label}: max |ORT − TorchSharp| = {diff:E3}, logit scale {scale:F3}, relative {diff / scale:E3}");
        Assert.True(diff <= Tolerance * scale, $"{label}: max |ORT − TorchSharp| = {diff:E3} > {Tolerance:E0} × {scale:F3}");

        // KV cache: a prefill of 5 tokens, one token at a time (past Mistral's window of 8), then a chunk of 3.
        using var stepper = Decoder(export, ids.Length);
        var length = ids[0].Length;
        var chunks = new List<(int Start, float[] Logits)>();
        var position = 0;
        foreach (var size in new[] { 5 }.Concat(Enumerable.Repeat(1, length - 8)).Append(3))
        {
            chunks.Add((position, stepper.Step(ids.Select(r => r[position..(position + size)]).ToArray())));
            position += size;
        }
        var vocab = full.Length / (ids.Length * length);
        var stitched = new float[full.Length];
        foreach (var (start, logits) in chunks)
        {
            var size = logits.Length / (ids.Length * vocab);
            for (var b = 0; b < ids.Length; b++)
                Array.Copy(logits, b * size * vocab, stitched, (b * length + start) * vocab, size * vocab);
        }
        var (stepDiff, _) = Compare(stitched, full);
        output.WriteLine($"{label}: KV-cache steps vs full sequence: max diff {stepDiff:E3}");
        Assert.True(stepDiff <= Tolerance * scale, $"{label}: KV-cache decoding differs from the full pass by {stepDiff:E3}");
    }

    [Theory]
    [MemberData(nameof(ParityFixtures.All), MemberType = typeof(ParityFixtures))]
    public void Dense_and_compressed_exports_match_the_TorchSharp_forward(string name)
    {
        using var temp = new TempFolder();
        var fixture = ParityFixtures.Folder(name);
        var ids = ParityReference.Read(fixture).InputIds;

        var dense = OnnxExporter.Export(fixture, temp.File("dense-onnx"));
        Assert.Equal(0, dense.FactorizedLinears);
        CheckLogits($"{name} dense", dense, fixture, ids);

        var artifact = temp.File("svd-0.4");
        CompressionJob.Run(new CompressionJobOptions
        {
            Model = fixture,
            Out = artifact,
            Compression = new CompressionOptions { Method = CompressionMethod.Svd, Ratio = 0.4 },
            Device = DeviceRequest.Cpu,
        });
        // Weights in model.onnx.data (as models past 2 GB must have them), which ONNX Runtime reads beside the graph.
        var compressed = OnnxExporter.Export(artifact, temp.File("svd-onnx"), new OnnxExportOptions { ExternalData = ExternalData.Always });
        Assert.True(compressed.ExternalData);
        Assert.True(compressed.FactorizedLinears > 0);
        Assert.Equal(dense.Linears.Count, compressed.Linears.Count);
        Assert.True(compressed.WeightBytes < dense.WeightBytes);
        CheckFactorsStayTwoMatMuls(compressed);
        CheckLogits($"{name} svd 0.4", compressed, artifact, ids);
    }

    /// <summary>Reads model.onnx back: every factorised linear's Bᵀ [in, k] and Aᵀ [k, out] feed MatMuls chained through
    /// a [.., k] intermediate, and no [in, out] weight of that linear is stored.</summary>
    private static void CheckFactorsStayTwoMatMuls(OnnxExportResult export)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(export.Folder, OnnxExporter.ModelFileName)));
        Assert.All(model.Graph.Initializer.Where(t => t.Dims.Count == 2), t => Assert.Equal(TensorProto.Types.DataLocation.External, t.DataLocation));
        var initializers = model.Graph.Initializer.ToDictionary(t => t.Name, t => t.Dims.ToArray());
        var matMuls = model.Graph.Node.Where(n => n.OpType == "MatMul").ToList();
        foreach (var linear in export.Linears.Where(l => l.IsFactorized))
        {
            var bT = linear.Name + DecoderModel.FactorBSuffix + ".T";
            var aT = linear.Name + DecoderModel.FactorASuffix + ".T";
            Assert.Equal([linear.InFeatures, linear.Rank!.Value], initializers[bT]);
            Assert.Equal([linear.Rank!.Value, linear.OutFeatures], initializers[aT]);
            var first = Assert.Single(matMuls, n => n.Input[1] == bT);
            var second = Assert.Single(matMuls, n => n.Input[1] == aT);
            Assert.Equal(first.Output[0], second.Input[0]);
            Assert.DoesNotContain(linear.Name + ".weight.T", initializers.Keys);
            Assert.DoesNotContain(linear.Name + ".weight", initializers.Keys);
        }
    }
}
