using System.Runtime.InteropServices;
using LowRank.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>How a model's weights are placed and computed.</summary>
public sealed record DecoderModelOptions
{
    /// <summary>The device the forward pass runs on.</summary>
    public Device Device { get; init; } = CPU;

    /// <summary>Weights and activations are held in this dtype (fp32 by default); logits are always fp32.</summary>
    public ScalarType ComputeDtype { get; init; } = ScalarType.Float32;

    /// <summary>
    /// Keep every block's linears on the host and move block i onto <see cref="Device"/> only while it runs,
    /// for models larger than device memory. Embeddings, norms and the LM head stay on the device.
    /// </summary>
    public bool StreamBlocks { get; init; }

    /// <summary>
    /// Do not read the block linears at load time: read each block's dense weights from the checkpoint when the block
    /// runs (the next block is read ahead on a background thread) and drop them again when it is done, unless a method
    /// changed them. With <see cref="StreamBlocks"/> memory then holds about two blocks of original weights plus the
    /// factors made so far, so a checkpoint larger than host memory can be compressed.
    /// </summary>
    public bool LazyBlockWeights { get; init; }
}

/// <summary>
/// What the three architectures share: weight loading with shape checks (dense or factorised linears, PyTorch or
/// Conv1D layout), the <see cref="OtherTensors"/> table, block streaming, incremental decoding with a
/// <see cref="KvCache"/>, causal attention, and running a block group by group (<see cref="IStagedDecoder"/>).
/// The math of each family lives in its own file, as the steps between one linear group's input and the next.
/// </summary>
public abstract class DecoderModel : IStagedDecoder
{
    /// <summary>Suffixes of a factorised linear in a compressed artifact: A [out, k] and B [k, in].</summary>
    public const string FactorASuffix = ".lowrank_A.weight";
    public const string FactorBSuffix = ".lowrank_B.weight";

    private readonly WeightSource weights;
    private readonly HashSet<string> consumed = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> others = new(StringComparer.Ordinal);
    private readonly List<LinearWeight>[] blockLinears;
    private readonly int[] holds;
    private readonly bool lazy;
    private Task? prefetch;
    private LowRank.Torch.StreamWorker? mover;
    private bool moverChecked;
    private bool disposed;

    protected DecoderModel(ModelConfig config, WeightSource weights, DecoderModelOptions? options)
    {
        Config = config;
        this.weights = weights;
        options ??= new DecoderModelOptions();
        Device = options.Device;
        ComputeDtype = options.ComputeDtype;
        StreamBlocks = options.StreamBlocks && options.Device.type != DeviceType.CPU;
        lazy = options.LazyBlockWeights;
        if (config.NumLayers <= 0) throw new LrkException(ErrorCodes.BadConfig, $"num_hidden_layers must be positive (got {config.NumLayers})");
        // Before anything is allocated per layer or per dimension (the families' constructors run after this one).
        ModelSizeCheck.Check(config, weights.Names, weights.ShapeOf);
        blockLinears = Enumerable.Range(0, config.NumLayers).Select(_ => new List<LinearWeight>()).ToArray();
        holds = new int[config.NumLayers];
    }

    public ModelConfig Config { get; }

    public Device Device { get; }

    public ScalarType ComputeDtype { get; }

    /// <summary>True when block linears live on the host and visit the device while their block runs.</summary>
    public bool StreamBlocks { get; }

    public int BlockCount => Config.NumLayers;

    public IReadOnlyDictionary<string, Tensor> OtherTensors => others;

    /// <summary>Checkpoint tensors the architecture does not use (e.g. GPT-2's attn.bias mask buffers, rotary inv_freq).</summary>
    public IReadOnlyList<string> UnusedTensors => weights.Names.Where(n => !consumed.Contains(n)).Order(StringComparer.Ordinal).ToList();

    public IReadOnlyList<LinearWeight> BlockLinears(int index) => blockLinears[CheckBlock(index)];

    public Tensor Embed(Tensor inputIds) => Embed(inputIds, 0);

    /// <summary>Token ids [batch, seq] → hidden states at positions start..start+seq-1.</summary>
    public abstract Tensor Embed(Tensor inputIds, long startPosition);

    public abstract Tensor Head(Tensor hidden);

    /// <summary>Block <paramref name="index"/>'s linear groups in execution order, the objects of <see cref="BlockLinears"/>.</summary>
    protected abstract IReadOnlyList<IReadOnlyList<LinearWeight>> Groups(int index);

    /// <summary>
    /// The block's state at group 0's input for hidden states at any positions. Runs inside a dispose scope of its own:
    /// return the state's tensors as they are, the caller keeps the new ones. Weights are on the device when this runs.
    /// </summary>
    protected abstract BlockState Enter(int index, Tensor hidden);

    /// <summary>
    /// Runs group <paramref name="group"/>'s linears on <paramref name="state"/>'s input and the block on to the next
    /// group's input, or to its output after the last group (Input null), at positions start..; with a cache the
    /// attention step attends to the cached positions too and appends its keys and values, without one it attends
    /// causally within the state. Scope and weights as for <see cref="Enter"/>.
    /// </summary>
    protected abstract BlockState Step(int index, LinearGroup group, BlockState state, long startPosition, KvCache? cache);

    public Tensor RunBlock(int index, Tensor hidden, LinearInputObserver? observer = null) =>
        WithBlockOnDevice(CheckBlock(index), () => Block(index, hidden, 0, null, observer));

    public Tensor Logits(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var hidden = Embed(inputIds, 0);
        for (var i = 0; i < BlockCount; i++) hidden = RunBlock(i, hidden);
        return Head(hidden).MoveToOuterDisposeScope();
    }

    public KvCache CreateCache() => new(BlockCount);

    public Tensor Logits(Tensor inputIds, KvCache cache)
    {
        using var scope = NewDisposeScope();
        var start = cache.Length;
        var hidden = Embed(inputIds, start);
        for (var i = 0; i < BlockCount; i++)
        {
            var index = i;
            var input = hidden;
            hidden = WithBlockOnDevice(index, () => Block(index, input, start, cache, null));
        }
        cache.Advance(inputIds.shape[1]);
        return Head(hidden).MoveToOuterDisposeScope();
    }

    public IReadOnlyList<IReadOnlyList<LinearWeight>> LinearGroups(int index) => Groups(CheckBlock(index));

    public BlockState EnterBlock(int index, Tensor hidden) => Entered(CheckHeld(index), hidden);

    public BlockState StepBlock(int index, int group, BlockState state)
    {
        var groups = Groups(CheckHeld(index));
        if (group < 0 || group >= groups.Count) throw new ArgumentOutOfRangeException(nameof(group), $"group {group} of {groups.Count}");
        if (state.Input is null) throw new ArgumentException("the state is past the block's last group (its Input is null)", nameof(state));
        return Stepped(index, group, state, 0, null);
    }

    /// <summary>
    /// One decoder block, group by group. Each step's intermediates die with its scope and what a step consumed is freed
    /// right after it, so activations live no longer than the step that needs them: at 7B and 32768 tokens a batch they
    /// are several GB, which bounds the block-streaming peak. The linears of a group are shown the very same tensor,
    /// because statistics are shared by input identity (<c>LinearStatistics</c>).
    /// </summary>
    private Tensor Block(int index, Tensor hidden, long startPosition, KvCache? cache, LinearInputObserver? observer)
    {
        using var scope = NewDisposeScope();
        var groups = Groups(index);
        var state = Entered(index, hidden);
        for (var g = 0; g < groups.Count; g++)
        {
            if (observer is not null)
            {
                foreach (var linear in groups[g]) observer(linear, state.Input!);
            }
            var next = Stepped(index, g, state, startPosition, cache);
            DisposeConsumed(state, next, hidden);
            state = next;
        }
        return ReferenceEquals(state.Residual, hidden) ? hidden : state.Residual.MoveToOuterDisposeScope();
    }

    /// <summary>Frees a step's input and replaced residual, except the caller's <paramref name="hidden"/> and whatever
    /// the new state still holds (a residual may be passed on, or be the next group's input).</summary>
    private static void DisposeConsumed(BlockState consumed, BlockState next, Tensor hidden)
    {
        Free(consumed.Input);
        if (!ReferenceEquals(consumed.Residual, consumed.Input)) Free(consumed.Residual);

        void Free(Tensor? tensor)
        {
            if (tensor is null || ReferenceEquals(tensor, hidden) || ReferenceEquals(tensor, next.Residual) || ReferenceEquals(tensor, next.Input)) return;
            tensor.Dispose();
        }
    }

    private BlockState Entered(int index, Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return Kept(new BlockState(hidden, null), Enter(index, hidden));
    }

    private BlockState Stepped(int index, int group, BlockState state, long startPosition, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        return Kept(state, Step(index, (LinearGroup)group, state, startPosition, cache));
    }

    /// <summary>Moves the tensors a step made out of its scope. Those it passed through belong to an outer scope already,
    /// and moving them would carry them one scope too far (TorchSharp moves relative to the owning scope).</summary>
    private static BlockState Kept(BlockState before, BlockState after)
    {
        var residual = Keep(after.Residual);
        var input = after.Input is null ? null : ReferenceEquals(after.Input, after.Residual) ? residual : Keep(after.Input);
        return new BlockState(residual, input);

        Tensor Keep(Tensor tensor) =>
            ReferenceEquals(tensor, before.Residual) || ReferenceEquals(tensor, before.Input) ? tensor : tensor.MoveToOuterDisposeScope();
    }

    public IDisposable HoldOnDevice(int index)
    {
        CheckBlock(index);
        if (!StreamBlocks && !lazy) return NoHold.Instance;
        bool first;
        lock (holds) first = holds[index]++ == 0;
        if (first) Arrive(index);
        return new BlockHold(this, index);
    }

    // The compressor's decomposition worker releases block i on its own thread while the main thread holds block i+1:
    // the counts are shared, each block's arrival and departure touch only that block's layers.
    private void Release(int index)
    {
        bool last;
        lock (holds) last = --holds[index] == 0;
        if (last) Leave(index);
    }

    /// <summary>Moves block <paramref name="index"/> to the device (reading lazy weights) and reads the next block ahead.</summary>
    private void Arrive(int index)
    {
        WaitForPrefetch();
        if (StreamBlocks)
        {
            foreach (var linear in blockLinears[index]) linear.MoveTo(Device);
        }
        // Read ahead: the next block's lazy weights from the checkpoint, and for a GPU into page-locked memory and on to
        // the GPU on the copy stream, beside this block's compute.
        var pin = StreamBlocks && Device.type == DeviceType.CUDA;
        if ((lazy || pin) && index + 1 < BlockCount)
        {
            var next = blockLinears[index + 1];
            var copier = pin ? Mover() : null;
            // TorchSharp's dispose scopes are per thread, so the tensors read on another thread are owned by the layers alone.
            prefetch = Task.Run(() =>
            {
                foreach (var linear in next) linear.Prefetch(pin);
                if (copier is null) return;
                copier.Start(() =>
                {
                    foreach (var linear in next) linear.MoveTo(Device);
                });
                copier.Wait();
            });
        }
    }

    private LowRank.Torch.StreamWorker? Mover()
    {
        if (!moverChecked)
        {
            moverChecked = true;
            mover = LowRank.Torch.StreamWorker.ForCopies(Device);
        }
        return mover;
    }

    /// <summary>Moves block <paramref name="index"/> back to the host; lazy weights nobody changed are dropped instead.</summary>
    private void Leave(int index)
    {
        // Weights brought over on the copy stream go back to its memory pool when freed, and the next copy may reuse that
        // memory at once: the stream that read them must be done first. That is the releasing thread's own (a block run
        // by one thread and released by another — the compressor's decomposition worker — was synchronised at hand-over).
        if (mover is not null) LowRank.Torch.CudaStreams.SynchronizeThisThread(Device);
        foreach (var linear in blockLinears[index])
        {
            if (lazy) linear.Evict();
            if (StreamBlocks) linear.MoveTo(CPU);
        }
    }

    private void WaitForPrefetch()
    {
        var pending = prefetch;
        prefetch = null;
        pending?.GetAwaiter().GetResult();
    }

    private sealed class BlockHold(DecoderModel model, int index) : IDisposable
    {
        private bool released;

        public void Dispose()
        {
            if (released) return;
            released = true;
            model.Release(index);
        }
    }

    private Tensor WithBlockOnDevice(int index, Func<Tensor> run)
    {
        if ((!StreamBlocks && !lazy) || holds[index] > 0) return run();
        Arrive(index);
        try
        {
            return run();
        }
        finally
        {
            Leave(index);
        }
    }

    private int CheckBlock(int index) =>
        index >= 0 && index < BlockCount ? index : throw new ArgumentOutOfRangeException(nameof(index), $"block {index} of {BlockCount}");

    /// <summary>Unlike <see cref="RunBlock"/>, the staged calls do not bring a block over themselves: a streamed or lazy
    /// block would be moved or read again for every step, which is correct but silently slow.</summary>
    private int CheckHeld(int index)
    {
        CheckBlock(index);
        if ((StreamBlocks || lazy) && holds[index] == 0)
            throw new InvalidOperationException(
                $"block {index} is not held on the device; call EnterBlock/StepBlock inside HoldOnDevice({index}) when blocks are streamed or read lazily");
        return index;
    }

    // ---- loading -------------------------------------------------------------------------------------------

    /// <summary>Loads a non-linear tensor (embedding, norm, head) onto the device in the compute dtype and lists it in <see cref="OtherTensors"/>.</summary>
    protected Tensor Take(string name, params long[] shape)
    {
        var tensor = LoadChecked(name, shape, Device);
        others[name] = tensor;
        return tensor;
    }

    protected Tensor? TakeOptional(string name, params long[] shape) => weights.Contains(name) ? Take(name, shape) : null;

    protected bool Has(string name) => weights.Contains(name);

    /// <summary>
    /// A tied model (tie_word_embeddings) uses its embedding as the head and ignores a stored <paramref name="name"/>,
    /// but an artifact carries that tensor along: one of another shape than the head's is refused
    /// (<see cref="ErrorCodes.BadCheckpoint"/>) instead of being copied into it unused.
    /// </summary>
    protected void CheckTiedHead(string name, params long[] shape)
    {
        if (!weights.Contains(name)) return;
        var actual = weights.ShapeOf(name);
        if (actual is null)
        {
            using var stored = weights.Load(name);
            actual = stored.shape;
        }
        if (!actual.SequenceEqual(shape))
            throw new LrkException(ErrorCodes.BadCheckpoint,
                $"tensor '{name}' has shape [{string.Join(", ", actual)}] but the config implies [{string.Join(", ", shape)}] " +
                "(tie_word_embeddings is set, so the head is the embedding and a stored one must have its shape)");
    }

    /// <summary>
    /// Loads the linear <paramref name="name"/> of block <paramref name="block"/>: dense <c>name.weight</c> [out, in]
    /// ([in, out] for GPT-2's Conv1D, transposed here), or factors <c>name.lowrank_A.weight</c> [out, k] and
    /// <c>name.lowrank_B.weight</c> [k, in]; plus <c>name.bias</c> [out] when <paramref name="bias"/>.
    /// </summary>
    protected LinearWeight TakeLinear(int block, string name, string kind, long outFeatures, long inFeatures, bool bias, bool conv1D = false)
    {
        var home = StreamBlocks ? CPU : Device;
        var biasTensor = bias ? LoadChecked(name + ".bias", [outFeatures], home) : null;
        try
        {
            var linear = LoadLinearWeight(name, kind, outFeatures, inFeatures, conv1D, home, biasTensor);
            blockLinears[block].Add(linear);
            return linear;
        }
        catch
        {
            biasTensor?.Dispose();
            throw;
        }
    }

    private LinearWeight LoadLinearWeight(string name, string kind, long outFeatures, long inFeatures, bool conv1D, Device home, Tensor? biasTensor)
    {
        if (QuantizedLinears.TryGetValue(name, out var quantized))
        {
            if (quantized.OutFeatures != outFeatures || quantized.InFeatures != inFeatures)
                throw new LrkException(ErrorCodes.BadArtifact,
                    $"config.json: lowrank.quantization.linears.{name} is [{quantized.OutFeatures}, {quantized.InFeatures}] but the config implies [{outFeatures}, {inFeatures}]");
            return LoadQuantized(name, kind, quantized.Format, outFeatures, inFeatures, home, biasTensor);
        }
        if (lazy && weights.Contains(name + ".weight") && weights.ShapeOf(name + ".weight") is { } storedShape)
        {
            var weightName = name + ".weight";
            long[] expected = conv1D ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
            CheckShape(weightName, storedShape, expected);
            consumed.Add(weightName);
            return LinearWeight.Lazy(name, kind, outFeatures, inFeatures, () =>
            {
                using var scope = NewDisposeScope();
                var loaded = LoadTensor(weightName, expected, CPU);
                return (conv1D ? loaded.t().contiguous() : loaded).MoveToOuterDisposeScope();
            }, biasTensor, ComputeDtype);
        }
        if (weights.Contains(name + ".weight"))
        {
            Tensor weight;
            if (conv1D)
            {
                using var stored = LoadChecked(name + ".weight", [inFeatures, outFeatures], home);
                weight = stored.t().contiguous().DetachFromDisposeScope();
            }
            else
            {
                weight = LoadChecked(name + ".weight", [outFeatures, inFeatures], home);
            }
            return new LinearWeight(name, kind, weight, biasTensor);
        }
        if (weights.Contains(name + FactorASuffix) && weights.Contains(name + FactorBSuffix))
        {
            var a = LoadChecked(name + FactorASuffix, [outFeatures, -1], home);
            try
            {
                var b = LoadChecked(name + FactorBSuffix, [a.shape[1], inFeatures], home);
                return LinearWeight.Factorized(name, kind, a, b, biasTensor);
            }
            catch
            {
                a.Dispose();
                throw;
            }
        }
        throw new LrkException(ErrorCodes.MissingTensor,
            $"the checkpoint has neither '{name}.weight' nor the factors '{name}{FactorASuffix}' and '{name}{FactorBSuffix}'");
    }

    /// <summary>The quantized linears of a compressed artifact and their formats (its config's <c>lowrank.quantization</c>).</summary>
    private IReadOnlyDictionary<string, LowRank.Artifacts.QuantizedLinear> QuantizedLinears => quantizedLinears ??=
        LowRank.Artifacts.ArtifactQuantization.Of(Config.Raw, "config.json");

    private IReadOnlyDictionary<string, LowRank.Artifacts.QuantizedLinear>? quantizedLinears;

    /// <summary>
    /// A linear stored as integers: <c>name.qweight</c>/<c>.scales</c>/<c>.qzeros</c> [out, in] (a quantized dense weight,
    /// in the nn.Linear layout for every family, GPT-2 included), or the same under <c>name.lowrank_A</c> [out, k] and
    /// <c>name.lowrank_B</c> [k, in]. Kept packed; the forward pass dequantizes.
    /// </summary>
    private LinearWeight LoadQuantized(string name, string kind, QuantFormat format, long outFeatures, long inFeatures, Device home, Tensor? biasTensor)
    {
        var prefixA = name + FactorASuffix[..^".weight".Length];
        var prefixB = name + FactorBSuffix[..^".weight".Length];
        if (weights.Contains(name + QuantizedMatrix.CodesSuffix))
        {
            var weight = LoadMatrix(name, format, outFeatures, inFeatures, home);
            return LinearWeight.Quantized(name, kind, outFeatures, inFeatures, weight, null, null, biasTensor, ComputeDtype);
        }
        if (weights.Contains(prefixA + QuantizedMatrix.CodesSuffix) && weights.Contains(prefixB + QuantizedMatrix.CodesSuffix))
        {
            var rank = weights.ShapeOf(prefixB + QuantizedMatrix.CodesSuffix)?[0] ?? -1;
            var b = LoadMatrix(prefixB, format, rank, inFeatures, home);
            try
            {
                var a = LoadMatrix(prefixA, format, outFeatures, b.Rows, home);
                return LinearWeight.Quantized(name, kind, outFeatures, inFeatures, null, a, b, biasTensor, ComputeDtype);
            }
            catch
            {
                b.Dispose();
                throw;
            }
        }
        throw new LrkException(ErrorCodes.MissingTensor,
            $"config.json lists '{name}' as quantized ({format}) but the checkpoint has neither '{name}{QuantizedMatrix.CodesSuffix}' nor '{prefixA}{QuantizedMatrix.CodesSuffix}' and '{prefixB}{QuantizedMatrix.CodesSuffix}'");
    }

    /// <summary>Reads one quantized matrix (rows = -1: as stored) and checks it against its format.</summary>
    private QuantizedMatrix LoadMatrix(string prefix, QuantFormat format, long rows, long cols, Device device)
    {
        using var scope = NewDisposeScope();
        Tensor Raw(string name)
        {
            consumed.Add(name);
            return weights.Load(name).to(device);
        }
        var codes = Raw(prefix + QuantizedMatrix.CodesSuffix);
        var scales = Raw(prefix + QuantizedMatrix.ScalesSuffix);
        var zeros = weights.Contains(prefix + QuantizedMatrix.ZerosSuffix) ? Raw(prefix + QuantizedMatrix.ZerosSuffix) : null;
        var matrix = QuantizedMatrix.FromStored(prefix, format, rows < 0 ? codes.shape[0] : rows, cols, codes, scales, zeros);
        return matrix;
    }

    /// <summary>Loads a tensor, checks its shape (-1 = any), converts it to the compute dtype on <paramref name="device"/>.</summary>
    private Tensor LoadChecked(string name, long[] shape, Device device)
    {
        var tensor = LoadTensor(name, shape, device);
        consumed.Add(name);
        return tensor;
    }

    /// <summary><see cref="LoadChecked"/> without the bookkeeping (safe from the prefetch thread).</summary>
    private Tensor LoadTensor(string name, long[] shape, Device device)
    {
        if (!weights.Contains(name)) throw new LrkException(ErrorCodes.MissingTensor, $"the checkpoint has no tensor '{name}' ({Config.Architecture} needs it)");
        using var scope = NewDisposeScope();
        var stored = weights.Load(name);
        CheckShape(name, stored.shape, shape);
        if (!stored.is_floating_point())
            throw new LrkException(ErrorCodes.BadCheckpoint, $"tensor '{name}' has dtype {stored.dtype}; weights must be floating point");
        return stored.to(ComputeDtype, device).contiguous().DetachFromDisposeScope();
    }

    private static void CheckShape(string name, long[] actual, long[] shape)
    {
        if (actual.Length != shape.Length || actual.Where((d, i) => shape[i] >= 0 && d != shape[i]).Any())
            throw new LrkException(ErrorCodes.BadCheckpoint,
                $"tensor '{name}' has shape [{string.Join(", ", actual)}] but the config implies [{string.Join(", ", shape.Select(d => d < 0 ? "k" : d.ToString()))}]");
    }

    // ---- math shared by the families ------------------------------------------------------------------------

    /// <summary>
    /// Scaled dot-product attention, causal, with optional sliding window: query [batch, heads, n, d] at positions
    /// start..start+n-1 against keys/values [batch, kv_heads, total, d] at positions 0..total-1. Grouped-query
    /// attention repeats each key/value head for heads/kv_heads consecutive query heads (HF repeat_kv).
    /// Returns [batch, n, heads·d]. Scale 1/√d.
    /// </summary>
    protected static Tensor Attention(Tensor query, Tensor key, Tensor value, long startPosition, int? slidingWindow = null)
    {
        using var scope = NewDisposeScope();
        var (batch, heads, n, headDim) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3]);
        var groups = heads / key.shape[1];
        if (groups > 1)
        {
            key = key.repeat_interleave(groups, dim: 1);
            value = value.repeat_interleave(groups, dim: 1);
        }
        var total = key.shape[2];
        var windowBinds = slidingWindow is { } w && total > w;
        Tensor output;
        if (startPosition == 0 && !windowBinds && total == n)
        {
            output = nn.functional.scaled_dot_product_attention(query, key, value, is_casual: n > 1);
        }
        else if (n == 1 && !windowBinds)
        {
            output = nn.functional.scaled_dot_product_attention(query, key, value);
        }
        else
        {
            var queryPositions = arange(startPosition, startPosition + n, device: query.device).unsqueeze(1);
            var keyPositions = arange(0, total, device: query.device).unsqueeze(0);
            var allowed = keyPositions <= queryPositions;
            if (slidingWindow is { } window) allowed = allowed.logical_and(keyPositions > queryPositions - window);
            output = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask: allowed);
        }
        return output.transpose(1, 2).reshape(batch, n, heads * headDim).MoveToOuterDisposeScope();
    }

    /// <summary>[batch, seq, heads·d] → [batch, heads, seq, d].</summary>
    protected static Tensor SplitHeads(Tensor x, long heads, long headDim) =>
        x.view(x.shape[0], x.shape[1], heads, headDim).transpose(1, 2);

    /// <summary>Token embedding lookup: ids [batch, seq] → [batch, seq, dim].</summary>
    protected static Tensor Lookup(Tensor table, Tensor ids) =>
        table.index_select(0, ids.reshape(-1)).view(ids.shape[0], ids.shape[1], table.shape[1]);

    /// <summary>The activation named by the config's hidden_act / activation_function (HF ACT2FN names).</summary>
    protected static Func<Tensor, Tensor> Activation(string name) => name switch
    {
        "silu" or "swish" => x => nn.functional.silu(x),
        "relu" => x => nn.functional.relu(x),
        "gelu" => x => nn.functional.gelu(x),
        // HF NewGELUActivation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        _ => throw new LrkException(ErrorCodes.UnsupportedArchitecture, $"activation '{name}' is not supported (supported: silu, relu, gelu, gelu_new)"),
    };

    /// <summary>Throws a clear error when learned position embeddings would be indexed past their table.</summary>
    protected void CheckPositions(long startPosition, long count)
    {
        if (startPosition + count > Config.MaxPositions)
            throw new LrkException(ErrorCodes.BadArgument,
                $"{startPosition + count} positions exceed the model's maximum of {Config.MaxPositions} (max_position_embeddings)");
    }

    // ---- lifetime ------------------------------------------------------------------------------------------

    protected virtual void Dispose(bool disposing)
    {
        if (disposed) return;
        disposed = true;
        if (!disposing) return;
        try
        {
            WaitForPrefetch();
        }
        catch (Exception e) when (e is LrkException or IOException or ExternalException)
        {
            // A failed read-ahead of a block nobody asked for any more must not mask the dispose.
        }
        mover?.Dispose();
        if (mover is not null) LowRank.Torch.CudaStreams.SynchronizeDevice(Device);
        foreach (var linear in blockLinears.SelectMany(b => b)) linear.Dispose();
        foreach (var tensor in others.Values.Distinct()) tensor.Dispose();
        others.Clear();
        if (lazy) weights.Dispose();
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }
}
