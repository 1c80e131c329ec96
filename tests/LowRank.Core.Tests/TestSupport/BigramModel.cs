using LowRank.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Tests.TestSupport;

/// <summary>
/// A decoder whose next-token distribution depends only on the current token: logits at position t are
/// log P(· | x_t) from a fixed table. Its perplexity on any stream has a closed form, which makes it the reference for
/// the window and batching arithmetic. The "hidden state" is the token id itself ([batch, seq, 1]), there are no
/// blocks, and Head looks the id's row up in the log-probability table (a lookup, not a one-hot product, so a −∞
/// entry stays −∞ instead of turning into 0 × −∞ = NaN everywhere).
/// </summary>
public sealed class BigramModel : IDecoderModel
{
    private readonly Tensor _logTable; // [V, V]: row = current token, column = next token

    /// <param name="probabilities">Row-stochastic [V, V] table; zeros give −∞ log-probabilities (non-finite losses).</param>
    public BigramModel(double[,] probabilities, int maxPositions = 4096)
    {
        var v = probabilities.GetLength(0);
        Probabilities = probabilities;
        var flat = new float[v * v];
        for (var i = 0; i < v; i++)
            for (var j = 0; j < v; j++) flat[i * v + j] = (float)Math.Log(probabilities[i, j]);
        _logTable = tensor(flat, [v, v]).DetachFromDisposeScope();
        Config = new ModelConfig
        {
            Family = ModelFamily.Llama,
            Architecture = "BigramForTests",
            HiddenSize = 1,
            IntermediateSize = v,
            NumLayers = 0,
            NumHeads = 1,
            NumKvHeads = 1,
            HeadDim = v,
            VocabSize = v,
            MaxPositions = maxPositions,
        };
    }

    public double[,] Probabilities { get; }

    public ModelConfig Config { get; }
    public Device Device => CPU;
    public int BlockCount => 0;
    public int ForwardCalls { get; private set; }

    public Tensor Embed(Tensor inputIds)
    {
        ForwardCalls++;
        return inputIds.to_type(float32).unsqueeze(-1);
    }

    public Tensor RunBlock(int index, Tensor hidden, LinearInputObserver? observer = null) => throw new ArgumentOutOfRangeException(nameof(index));

    public Tensor Head(Tensor hidden)
    {
        var shape = hidden.shape;
        var ids = hidden.squeeze(-1).to_type(int64).flatten();
        return _logTable.index_select(0, ids).reshape(shape[0], shape[1], Config.VocabSize);
    }

    public IReadOnlyList<LinearWeight> BlockLinears(int index) => throw new ArgumentOutOfRangeException(nameof(index));

    public IReadOnlyDictionary<string, Tensor> OtherTensors => new Dictionary<string, Tensor> { ["log_table"] = _logTable };

    /// <summary>−log P(tokens[t] | tokens[t−1]) in fp64.</summary>
    public double Nll(int previous, int next) => -Math.Log(Probabilities[previous, next]);

    /// <summary>A seeded random row-stochastic table.</summary>
    public static double[,] RandomTable(int v, int seed, double sharpness = 3.0)
    {
        var rng = new Random(seed);
        var table = new double[v, v];
        for (var i = 0; i < v; i++)
        {
            double sum = 0;
            for (var j = 0; j < v; j++) sum += table[i, j] = Math.Exp(sharpness * rng.NextDouble());
            for (var j = 0; j < v; j++) table[i, j] /= sum;
        }
        return table;
    }

    public void Dispose() => _logTable.Dispose();
}
