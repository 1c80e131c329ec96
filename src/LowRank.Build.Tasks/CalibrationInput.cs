using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using LowRank.Cache;

namespace LowRank.Build.Tasks;

/// <summary>
/// The calibration text the compressor is fed, and its digest for the cache key. <c>CalibrationStart</c> and
/// <c>CalibrationEnd</c> (character offsets, end exclusive) select a slice, written once to obj/lowrank/ under its
/// own hash, so the tool always receives exactly the text the key describes.
/// </summary>
internal sealed record CalibrationInput(string File, string Digest)
{
    public static CalibrationInput? Resolve(string? calibration, string? start, string? end, string projectDirectory, string stateFolder, DigestSidecar sidecar)
    {
        if (string.IsNullOrWhiteSpace(calibration)) return null;
        var path = Path.GetFullPath(Path.Combine(projectDirectory, calibration.Trim()));
        if (!System.IO.File.Exists(path)) throw new LrkException(ErrorCodes.DataUnreadable, $"calibration file not found: {path}");
        var hasStart = !string.IsNullOrWhiteSpace(start);
        var hasEnd = !string.IsNullOrWhiteSpace(end);
        if (!hasStart && !hasEnd) return new CalibrationInput(path, "sha256:" + sidecar.Sha256(path));

        var text = System.IO.File.ReadAllText(path, Encoding.UTF8);
        var from = hasStart ? ParseOffset(start!, "CalibrationStart") : 0;
        var to = hasEnd ? ParseOffset(end!, "CalibrationEnd") : text.Length;
        if (from >= to || to > text.Length)
            throw new LrkException(ErrorCodes.BadItem, $"calibration slice [{from}, {to}) is empty or past the end of {path} ({text.Length} characters)");
        var bytes = Encoding.UTF8.GetBytes(text[from..to]);
        var hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        var slice = Path.Combine(stateFolder, $"calibration-{hash[..16]}.txt");
        if (!System.IO.File.Exists(slice))
        {
            Directory.CreateDirectory(stateFolder);
            var temp = slice + $".{Environment.ProcessId}.tmp";
            System.IO.File.WriteAllBytes(temp, bytes);
            System.IO.File.Move(temp, slice, overwrite: true);
        }
        return new CalibrationInput(slice, "sha256:" + hash);
    }

    private static int ParseOffset(string text, string name) =>
        int.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= 0
            ? value
            : throw new LrkException(ErrorCodes.BadItem, $"{name}='{text}' must be a character offset (a whole number ≥ 0)");
}
