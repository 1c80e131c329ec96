using System.Text.Json.Serialization;

namespace LowRank.Compression;

/// <summary>Which hidden states feed block i+1 while compressing (and which inputs the statistics of block i see).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<Propagation>))]
public enum Propagation
{
    /// <summary>The original model's hidden states (SVD-LLM's and ASVD's published pipelines profile the original model).</summary>
    Original,
    /// <summary>The hidden states of the model compressed so far, so later blocks are fitted to the inputs they will really see
    /// (AdaSVD, LC-SVD; optional for the others).</summary>
    Compressed,
}
