namespace LowRank;

/// <summary>
/// One step of a long operation, reported through <see cref="IProgress{T}"/> by the engine (compression, evaluation,
/// artifact writing) and rendered by whoever runs it: a progress bar on a terminal, plain lines in CI, or a
/// <see cref="ToolEvent"/> JSON line for the MSBuild task. <see cref="Block"/> is the 0-based position within the
/// stage and <see cref="Blocks"/> the number of positions: decoder blocks while calibrating, compressing and
/// evaluating, tensors while writing an artifact.
/// </summary>
public sealed record ProgressUpdate(string Stage, string Message, int? Block = null, int? Blocks = null);
