using System.Globalization;
using LowRank.Cache;

namespace LowRank.Build.Tasks;

/// <summary>
/// The calibration text given to the compressor (<c>--calib</c>, <c>--calib-start</c>, <c>--calib-end</c>) and its
/// part of the cache key: a file's SHA-256, a folder's <see cref="ModelDigest"/>, or for <c>npm:&lt;corpus&gt;</c>
/// the name itself (an npm corpus is pinned by its package version). <c>CalibrationStart</c>/<c>CalibrationEnd</c>
/// are byte offsets into the text, as the tool reads them, and are part of the key.
/// </summary>
internal sealed record CalibrationInput(string Argument, string Digest, long? Start, long? End)
{
    public static CalibrationInput? Resolve(string? calibration, string? start, string? end, string projectDirectory, DigestSidecar sidecar, string sidecarRoot)
    {
        if (string.IsNullOrWhiteSpace(calibration)) return null;
        var text = calibration.Trim();
        var from = ParseOffset(start, "CalibrationStart");
        var to = ParseOffset(end, "CalibrationEnd");
        if (from is { } f && to is { } t && f >= t) throw new LrkException(ErrorCodes.BadItem, $"CalibrationStart ({f}) must be before CalibrationEnd ({t})");
        if (text.StartsWith("npm:", StringComparison.Ordinal)) return new CalibrationInput(text, text, from, to);

        var path = Path.GetFullPath(Path.Combine(projectDirectory, text));
        if (File.Exists(path)) return new CalibrationInput(path, "sha256:" + sidecar.Sha256(path), from, to);
        if (Directory.Exists(path)) return new CalibrationInput(path, ModelDigest.Compute(path, DigestSidecar.Open(path, sidecarRoot)).Digest, from, to);
        throw new LrkException(ErrorCodes.DataUnreadable, $"calibration text not found: {path}");
    }

    /// <summary>The calibration part of the cache key: the content digest and, when set, the byte range.</summary>
    public string KeyText => Start is null && End is null ? Digest : $"{Digest}[{Start?.ToString(CultureInfo.InvariantCulture)}:{End?.ToString(CultureInfo.InvariantCulture)}]";

    private static long? ParseOffset(string? text, string name)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        return long.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= 0
            ? value
            : throw new LrkException(ErrorCodes.BadItem, $"{name}='{text}' must be a byte offset (a whole number ≥ 0)");
    }
}
