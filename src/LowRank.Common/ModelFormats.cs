namespace LowRank;

/// <summary>
/// What a compression writes: the compressed artifact (safetensors), its ONNX export, or both. The values that
/// <c>compress --format</c> and the MSBuild <c>Format</c>/<c>Formats</c> metadata accept, in one place so the task
/// rejects a bad one at the item's line and the cache key holds one canonical spelling.
/// <list type="bullet">
/// <item><c>safetensors</c> (the default): the artifact folder.</item>
/// <item><c>onnx</c>: only the ONNX folder (model.onnx, genai_config.json, tokenizer files); the artifact is an intermediate.</item>
/// <item><c>safetensors;onnx</c>: the artifact folder with the ONNX folder in its <see cref="OnnxSubfolder"/>.</item>
/// </list>
/// </summary>
public sealed record ModelFormats(bool Safetensors, bool Onnx)
{
    public const string SafetensorsName = "safetensors";
    public const string OnnxName = "onnx";

    /// <summary>Where the ONNX export goes when the artifact is written too.</summary>
    public const string OnnxSubfolder = "onnx";

    public static readonly ModelFormats Default = new(Safetensors: true, Onnx: false);

    /// <summary>Canonical text, the order fixed: <c>safetensors</c>, <c>onnx</c> or <c>safetensors;onnx</c>.</summary>
    public string Canonical => string.Join(";", new[] { Safetensors ? SafetensorsName : null, Onnx ? OnnxName : null }.OfType<string>());

    /// <summary>Where the ONNX folder is, relative to the output folder: "" (onnx alone), "onnx" (both), or null (no ONNX).</summary>
    public string? OnnxRelativeFolder => !Onnx ? null : Safetensors ? OnnxSubfolder : "";

    public override string ToString() => Canonical;

    /// <summary>Formats separated by ';', ',' or spaces, any case; empty means <see cref="Default"/>. Else <see cref="ErrorCodes.BadArgument"/>.</summary>
    public static ModelFormats Parse(string? text)
    {
        var names = (text ?? "").Split([';', ',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(n => n.ToLowerInvariant()).ToList();
        if (names.Count == 0) return Default;
        foreach (var name in names)
            if (name is not (SafetensorsName or OnnxName))
                throw new LrkException(ErrorCodes.BadArgument, $"unknown model format '{name}': use {SafetensorsName}, {OnnxName} or {SafetensorsName};{OnnxName}");
        return new ModelFormats(names.Contains(SafetensorsName), names.Contains(OnnxName));
    }
}
