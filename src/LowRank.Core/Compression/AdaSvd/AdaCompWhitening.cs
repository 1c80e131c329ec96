namespace LowRank.Compression;

/// <summary>Which inputs' Gram whitens adaComp's starting truncation.</summary>
public enum AdaCompWhitening
{
    /// <summary><c>H_o = X_o X_oᵀ</c> of the original model's inputs (SVD-LLM's profile, as methods.md describes AdaSVD):
    /// adaComp then compensates the truncation for the drift of the compressed model's inputs.</summary>
    Original,
    /// <summary><c>H = X Xᵀ</c> of the compressed model's inputs: the start is SVD-LLM on the compressed stream.</summary>
    Compressed,
}
