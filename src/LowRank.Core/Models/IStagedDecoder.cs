using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// A decoder block stopped at the input of one of its linear groups: the residual stream and that group's input.
/// After the last group <see cref="Input"/> is null and <see cref="Residual"/> is the block's output.
/// </summary>
public readonly record struct BlockState(Tensor Residual, Tensor? Input);

/// <summary>
/// A decoder whose blocks can also be run one linear group at a time. A group is the linears fed one input tensor, in
/// the order their inputs arise: LLaMA [q, k, v] [o] [gate, up] [down]; OPT [q, k, v] [out] [fc1] [fc2]; GPT-2
/// [c_attn] [attn.c_proj] [c_fc] [mlp.c_proj]. A method that compresses a block group by group (AdaSVD) collects
/// group g's inputs over every calibration batch, replaces group g's weights, and only then runs group g: so every
/// group sees inputs that went through the already-compressed groups before it. <see cref="IDecoderModel.RunBlock"/>
/// is these steps run back to back.
/// <para>Ownership: the tensors of a returned state are new, except that <see cref="EnterBlock"/>'s
/// <see cref="BlockState.Residual"/> is its hidden argument, a step returns its input state's
/// <see cref="BlockState.Residual"/> (the same object) when it does not change it, and a group input may be the residual
/// itself (OPT without pre-norm); compare with <see cref="object.ReferenceEquals"/> before disposing.</para>
/// </summary>
public interface IStagedDecoder : IDecoderModel
{
    /// <summary>Block <paramref name="index"/>'s linear groups in execution order; together they hold every linear of
    /// <see cref="IDecoderModel.BlockLinears"/> exactly once.</summary>
    IReadOnlyList<IReadOnlyList<LinearWeight>> LinearGroups(int index);

    /// <summary>The block's state at group 0's input, for hidden states [batch, seq, hidden] at positions 0..seq-1.
    /// A streamed model's block must be held on the device (<see cref="IDecoderModel.HoldOnDevice"/>).</summary>
    BlockState EnterBlock(int index, Tensor hidden);

    /// <summary>Runs group <paramref name="group"/> on <paramref name="state"/>'s input and the block on to the next
    /// group's input (or to its output after the last group), with full causal attention.</summary>
    BlockState StepBlock(int index, int group, BlockState state);
}
