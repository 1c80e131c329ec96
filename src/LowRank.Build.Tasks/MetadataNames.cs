namespace LowRank.Build.Tasks;

/// <summary>Metadata of <c>CompressedModel</c> items (defaults in build/LowRank.Build.Tasks.props) and of the resolved items the targets pass between tasks.</summary>
internal static class MetadataNames
{
    // What the user sets on <CompressedModel>.
    public const string Method = "Method";
    public const string Ratio = "Ratio";
    public const string Calibration = "Calibration";
    public const string CalibrationStart = "CalibrationStart";
    public const string CalibrationEnd = "CalibrationEnd";
    public const string Samples = "Samples";
    public const string SeqLen = "SeqLen";
    public const string Seed = "Seed";
    public const string Device = "Device";
    public const string FactorDtype = "FactorDtype";
    public const string ToolArguments = "ToolArguments";
    public const string OutputName = "OutputName";
    public const string Revision = "Revision";
    public const string GenerateClass = "GenerateClass";
    /// <summary>safetensors (default), onnx, or both ("safetensors;onnx"); <see cref="Formats"/> is the same metadata's plural spelling.</summary>
    public const string Format = "Format";
    public const string Formats = "Formats";

    // What ResolveCompressedModels adds for the later tasks.
    /// <summary>The request's <c>compress</c> arguments (<see cref="LowRank.Compression.CompressionRequest.ToArguments"/>), a JSON array.</summary>
    public const string Arguments = "CompressArguments";
    public const string Key = "Key";
    public const string KeyText = "KeyText";
    public const string CacheHit = "CacheHit";
    public const string SourceModel = "SourceModel";
    public const string CalibrationFile = "CalibrationFile";
    public const string ToolPath = "ToolPath";
    public const string ToolVersion = "ToolVersion";
    public const string ItemFile = "ItemFile";
    public const string ItemLine = "ItemLine";
    public const string ItemColumn = "ItemColumn";
}
