using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using LowRank.Onnx.Graphs;

namespace LowRank.Onnx.Tests;

/// <summary>Drives an exported decoder with ONNX Runtime (CPU provider) the way GenAI does: ids, mask, positions,
/// past keys/values in; logits and present keys/values out, fed back as the next call's past.</summary>
public sealed class OnnxDecoder : IDisposable
{
    private readonly InferenceSession session;
    private readonly int layers;
    private DenseTensor<float>[] keys;
    private DenseTensor<float>[] values;

    /// <param name="configEntries">Session configuration entries (e.g. session.qdq_matmulnbits_accuracy_level).</param>
    public OnnxDecoder(string modelPath, int layers, int kvHeads, int headDim, int batch, IReadOnlyDictionary<string, string>? configEntries = null)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        foreach (var (key, value) in configEntries ?? new Dictionary<string, string>()) options.AddSessionConfigEntry(key, value);
        session = new InferenceSession(modelPath, options);
        this.layers = layers;
        keys = Enumerable.Range(0, layers).Select(_ => new DenseTensor<float>([batch, kvHeads, 0, headDim])).ToArray();
        values = Enumerable.Range(0, layers).Select(_ => new DenseTensor<float>([batch, kvHeads, 0, headDim])).ToArray();
    }

    public long Past { get; private set; }

    /// <summary>Runs ids [batch, n] at positions Past.. and returns logits [batch, n, vocab] as a flat array.</summary>
    public float[] Step(long[][] ids)
    {
        int batch = ids.Length, n = ids[0].Length;
        var total = (int)Past + n;
        var inputIds = new DenseTensor<long>(ids.SelectMany(r => r).ToArray(), [batch, n]);
        var mask = new DenseTensor<long>(Enumerable.Repeat(1L, batch * total).ToArray(), [batch, total]);
        var positions = new DenseTensor<long>(Enumerable.Range(0, batch).SelectMany(_ => Enumerable.Range((int)Past, n).Select(p => (long)p)).ToArray(), [batch, n]);
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor(DecoderGraph.InputIds, inputIds),
            NamedOnnxValue.CreateFromTensor(DecoderGraph.AttentionMask, mask),
            NamedOnnxValue.CreateFromTensor(DecoderGraph.PositionIds, positions),
        };
        for (var i = 0; i < layers; i++)
        {
            inputs.Add(NamedOnnxValue.CreateFromTensor(DecoderGraph.PastKey(i), keys[i]));
            inputs.Add(NamedOnnxValue.CreateFromTensor(DecoderGraph.PastValue(i), values[i]));
        }
        using var results = session.Run(inputs);
        var byName = results.ToDictionary(r => r.Name);
        for (var i = 0; i < layers; i++)
        {
            keys[i] = Copy(byName[DecoderGraph.PresentKey(i)].AsTensor<float>());
            values[i] = Copy(byName[DecoderGraph.PresentValue(i)].AsTensor<float>());
            if (keys[i].Dimensions[2] != total) throw new InvalidOperationException($"present.{i}.key has {keys[i].Dimensions[2]} positions, expected {total}");
        }
        Past = total;
        return byName[DecoderGraph.Logits].AsTensor<float>().ToArray();
    }

    private static DenseTensor<float> Copy(Tensor<float> tensor) => new(tensor.ToArray(), tensor.Dimensions.ToArray());

    public void Dispose() => session.Dispose();
}
