namespace LowRank.Models;

/// <summary>
/// The linear groups of a decoder block, in the order the block runs them (modeling_llama's LlamaDecoderLayer, OPT's
/// and GPT-2's blocks alike): the linears of one group read the same input. <see cref="IStagedDecoder.LinearGroups"/>
/// lists a block's linears in this order, and each family's <c>Step</c> reads top to bottom by these names.
/// </summary>
public enum LinearGroup
{
    /// <summary>q/k/v (GPT-2: c_attn) on the normalised hidden states; the step runs attention.</summary>
    AttentionInput,
    /// <summary>o_proj (OPT: out_proj, GPT-2: attn.c_proj) on the attention output; the step adds the residual and normalises.</summary>
    AttentionOutput,
    /// <summary>gate/up (OPT: fc1, GPT-2: c_fc) on the normalised hidden states; the step applies the activation.</summary>
    MlpInput,
    /// <summary>down_proj (OPT: fc2, GPT-2: mlp.c_proj); the step adds the residual: the block's output.</summary>
    MlpOutput,
}
