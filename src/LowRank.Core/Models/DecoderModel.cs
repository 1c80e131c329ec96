using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// What the three architectures share: weight loading with shape checks (dense or factorised linears, PyTorch or
/// Conv1D layout), the <see cref="OtherTensors"/> table, block streaming, incremental decoding with a
/// <see cref="KvCache"/>, causal attention, and running a block group by group (<see cref="IStagedDecoder"/>).
/// The math of each family lives in its own file, as the steps between one linear group's input and the next.
/// </summary>
public abstract partial class DecoderModel : IStagedDecoder
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
