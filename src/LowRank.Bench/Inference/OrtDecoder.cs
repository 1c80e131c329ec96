using LowRank.Onnx;
using LowRank.Onnx.Graphs;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace LowRank.Bench.Inference;

/// <summary>
/// Runs an exported decoder (<see cref="DecoderGraph"/>'s interface) with ONNX Runtime as GenAI does, without copies:
/// each call's present keys/values are the next call's past, as the OrtValues ONNX Runtime returned.
/// </summary>
public sealed class OrtDecoder : IDisposable
{
    private readonly InferenceSession session;
    private readonly int layers;
    private readonly int kvHeads;
    private readonly int headDim;
    private readonly TensorElementType cacheType;
    private readonly string[] outputNames;
    private readonly RunOptions runOptions = new();
    private OrtValue[] past = [];
    private IDisposableReadOnlyCollection<OrtValue>? held;
    private int batch;

    public OrtDecoder(string modelPath, int layers, int kvHeads, int headDim, OnnxDtype dtype, SessionOptions options)
    {
        session = new InferenceSession(modelPath, options);
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        cacheType = dtype == OnnxDtype.Float16 ? TensorElementType.Float16 : TensorElementType.Float;
        outputNames = [DecoderGraph.Logits, .. Enumerable.Range(0, layers).SelectMany(i => new[] { DecoderGraph.PresentKey(i), DecoderGraph.PresentValue(i) })];
    }

    /// <summary>Positions in the cache: the next call's tokens start here.</summary>
    public long Past { get; private set; }

    /// <summary>Starts new sequences: an empty cache for <paramref name="batchSize"/> of them.</summary>
    public void Reset(int batchSize)
    {
        Release();
        batch = batchSize;
        Past = 0;
        past = Enumerable.Range(0, 2 * layers)
            .Select(_ => OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, cacheType, [batchSize, kvHeads, 0, headDim]))
            .ToArray();
    }

    /// <summary>Runs <paramref name="ids"/> ([batch, n] row-major) and returns the greedy next token of each sequence.</summary>
    public long[] Step(long[] ids)
    {
        var n = ids.Length / batch;
        var total = Past + n;
        var positions = new long[ids.Length];
        for (var b = 0; b < batch; b++)
        {
            for (var j = 0; j < n; j++) positions[b * n + j] = Past + j;
        }
        using var inputIds = OrtValue.CreateTensorValueFromMemory(ids, [batch, n]);
        using var mask = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, (int)(batch * total)).ToArray(), [batch, total]);
        using var positionIds = OrtValue.CreateTensorValueFromMemory(positions, [batch, n]);
        var names = new List<string> { DecoderGraph.InputIds, DecoderGraph.AttentionMask, DecoderGraph.PositionIds };
        var values = new List<OrtValue> { inputIds, mask, positionIds };
        for (var i = 0; i < layers; i++)
        {
            names.Add(DecoderGraph.PastKey(i));
            values.Add(past[2 * i]);
            names.Add(DecoderGraph.PastValue(i));
            values.Add(past[2 * i + 1]);
        }
        var outputs = session.Run(runOptions, names, values, outputNames);
        Release();
        held = outputs;
        past = outputs.Skip(1).ToArray();
        Past = total;
        return Greedy(outputs[0].GetTensorDataAsSpan<float>(), n);
    }

    /// <summary>Argmax of each sequence's last position.</summary>
    private long[] Greedy(ReadOnlySpan<float> logits, int n)
    {
        var vocab = logits.Length / (batch * n);
        var next = new long[batch];
        for (var b = 0; b < batch; b++)
        {
            var row = logits.Slice((b * n + n - 1) * vocab, vocab);
            var best = 0;
            for (var v = 1; v < vocab; v++)
            {
                if (row[v] > row[best]) best = v;
            }
            next[b] = best;
        }
        return next;
    }

    private void Release()
    {
        if (held is not null)
        {
            held.Dispose();
            held = null;
        }
        else
        {
            foreach (var value in past) value.Dispose();
        }
        past = [];
    }

    public void Dispose()
    {
        Release();
        runOptions.Dispose();
        session.Dispose();
    }
}
