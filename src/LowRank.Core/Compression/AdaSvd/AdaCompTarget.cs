namespace LowRank.Compression;

/// <summary>Which inputs adaComp's target outputs are computed from.</summary>
public enum AdaCompTarget
{
    /// <summary>Target <c>W x_orig</c>: the layer's output in the uncompressed model. The compressed layer sees
    /// <c>x_comp</c> (inputs propagated through the already-compressed earlier blocks) and is fitted to undo their error.</summary>
    Original,
    /// <summary>Target <c>W x_comp</c>: the layer's own dense output on the inputs it will really see. Starting from a
    /// truncation whitened with the original inputs (<see cref="AdaCompWhitening.Original"/>), adaComp re-fits it to them;
    /// with <see cref="AdaCompWhitening.Compressed"/> the start is already optimal for this target and adaComp cannot move it.</summary>
    Compressed,
}
