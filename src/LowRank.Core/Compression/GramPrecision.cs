namespace LowRank.Compression;

/// <summary>How the Gram products of half-precision activations are computed on CUDA.</summary>
public enum GramPrecision
{
    /// <summary><see cref="TensorCores"/> where available, else <see cref="Tf32"/>.</summary>
    Auto,
    /// <summary>fp16/bf16 inputs on the tensor cores with fp32 accumulation (cuBLAS GemmEx).</summary>
    TensorCores,
    /// <summary>fp32 copies on the TF32 tensor cores (fp16 values are exact in TF32; fp32 accumulation).</summary>
    Tf32,
    /// <summary>fp32 FMA (no tensor cores): the most accurate, the slowest.</summary>
    Fp32,
}
