using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace LowRank.Data;

/// <summary>How a text location is read. <see cref="Auto"/>: a folder → <see cref="Folder"/>, <c>*.jsonl</c> /
/// <c>*.ndjson</c> → <see cref="JsonLines"/>, <c>npm:NAME</c> → an npm corpus, anything else → <see cref="Plain"/>.
/// WikiText is never guessed: its files look like plain text.</summary>
public enum TextFormat
{
    Auto,
    Plain,
    Folder,
    JsonLines,
    WikiText,
}

public sealed record TextSourceOptions
{
    public TextFormat Format { get; init; } = TextFormat.Auto;

    /// <summary>JSON Lines: the string field to read, dotted for nested objects (<c>meta.text</c>).</summary>
    public string JsonField { get; init; } = "text";

    public WikiTextMode WikiText { get; init; } = WikiTextMode.Papers;

    /// <summary>Folders: which files to read (searched recursively).</summary>
    public string FolderPattern { get; init; } = "*.txt";

    /// <summary>Byte range on the reader's output (alternative to the <c>path[start:end]</c> suffix).</summary>
    public long? ByteStart { get; init; }

    public long? ByteEnd { get; init; }

    /// <summary>Folder holding <c>node_modules</c> with the npm corpora; default: <c>$LOWRANK_NPM_DATA</c>, else the
    /// nearest <c>.data/npm</c> above the working directory or the tool.</summary>
    public string? NpmRoot { get; init; }
}

/// <summary>
/// Reads text for calibration and evaluation. A location is a path or <c>npm:NAME</c>, optionally followed by a byte
/// range <c>[start:end]</c> (either bound may be empty). Rules that make the result exact and repeatable:
/// <list type="bullet">
/// <item>Files are decoded as strict UTF-8 (invalid bytes are an error, not replaced); a leading UTF-8 BOM is dropped.
/// Line endings are kept as they are.</item>
/// <item>Folder: the files matching the pattern, recursively, sorted by their relative path (ordinal, '/'-separated);
/// each file's trailing line breaks removed; joined with "\n\n" so each file starts a new paragraph.</item>
/// <item>JSON Lines: one object per non-blank line; the chosen string field of each, joined with "\n\n".</item>
/// <item>WikiText: see <see cref="WikiText"/>. npm corpora: see <see cref="NpmCorpora"/>.</item>
/// <item>The byte range is applied last, to the UTF-8 bytes of the reader's output (for a plain file: the file's bytes
/// after a BOM). Both bounds must fall on character boundaries.</item>
/// </list>
/// </summary>
public static partial class TextSources
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static SourceText Load(string spec, TextSourceOptions? options = null)
    {
        options ??= new TextSourceOptions();
        var (location, specRange) = ParseSpec(spec);
        if (specRange is not null && (options.ByteStart is not null || options.ByteEnd is not null))
            throw new LrkException(ErrorCodes.BadArgument, $"'{spec}' has a byte range and --text-start/--text-end are also given; use one");
        var range = specRange ?? (options.ByteStart is null && options.ByteEnd is null ? null : new ByteRange(options.ByteStart ?? 0, options.ByteEnd));
        if (range is { } r && (r.Start < 0 || r.End < 0))
            throw new LrkException(ErrorCodes.BadArgument, $"byte range [{r.Start}:{r.End}] of '{location}' has a negative bound; byte offsets count from 0");

        var (bytes, format, conversion) = Read(location, options);
        var total = bytes.Length;
        var (start, end) = Resolve(range, total, location, bytes);
        var text = Decode(bytes.AsSpan((int)start, (int)(end - start)), location, start);
        var used = end - start;
        var rangeText = range is null ? $"{total:N0} bytes" : $"bytes [{start}, {end}) = {used:N0} of {total:N0}";
        return new SourceText
        {
            Text = text,
            Location = range is null ? location : $"{location}[{start}:{end}]",
            Format = format,
            Description = $"{location}: {conversion}; {rangeText}",
            Sha256 = SourceText.Sha256Hex(bytes.AsSpan((int)start, (int)used)),
            Bytes = used,
            Range = range is null ? null : new ByteRange(start, end),
            TotalBytes = total,
        };
    }

    /// <summary>Splits <c>path[start:end]</c> into the location and the range; a path that exists as written is never split.</summary>
    public static (string Location, ByteRange? Range) ParseSpec(string spec)
    {
        if (string.IsNullOrWhiteSpace(spec)) throw new LrkException(ErrorCodes.BadArgument, "the text location is empty");
        if (File.Exists(spec) || Directory.Exists(spec)) return (spec, null);
        var match = RangeSuffix().Match(spec);
        if (!match.Success) return (spec, null);
        long? start = match.Groups["start"].Value.Length > 0 ? long.Parse(match.Groups["start"].Value) : null;
        long? end = match.Groups["end"].Value.Length > 0 ? long.Parse(match.Groups["end"].Value) : null;
        return (match.Groups["loc"].Value, new ByteRange(start ?? 0, end));
    }

    [GeneratedRegex(@"^(?<loc>.+)\[(?<start>\d{0,18}):(?<end>\d{0,18})\]$")]
    private static partial Regex RangeSuffix();

    private static (byte[] Bytes, string Format, string Conversion) Read(string location, TextSourceOptions options)
    {
        if (location.StartsWith("npm:", StringComparison.Ordinal))
        {
            var corpus = NpmCorpora.Read(location["npm:".Length..], options.NpmRoot);
            return (Encoding.UTF8.GetBytes(corpus.Text), "npm", corpus.Conversion);
        }
        var format = options.Format;
        if (format == TextFormat.Auto)
        {
            var extension = Path.GetExtension(location).ToLowerInvariant();
            format = Directory.Exists(location) ? TextFormat.Folder
                : extension is ".jsonl" or ".ndjson" ? TextFormat.JsonLines
                : TextFormat.Plain;
        }
        switch (format)
        {
            case TextFormat.Plain:
                return (ReadFileBytes(location), "plain", "plain text");
            case TextFormat.Folder:
            {
                var (text, count) = ReadFolder(location, options.FolderPattern);
                return (Encoding.UTF8.GetBytes(text), "folder", $"{count} files matching {options.FolderPattern}, sorted by path, joined with a blank line");
            }
            case TextFormat.JsonLines:
            {
                var (text, count) = ReadJsonLines(location, options.JsonField);
                return (Encoding.UTF8.GetBytes(text), "jsonl", $"JSON Lines field '{options.JsonField}' of {count} records, joined with a blank line");
            }
            case TextFormat.WikiText:
            {
                var raw = ReadFileText(location);
                return (Encoding.UTF8.GetBytes(WikiText.ToText(raw, options.WikiText)), "wikitext", WikiText.Describe(options.WikiText));
            }
            default:
                throw new LrkException(ErrorCodes.BadArgument, $"unknown text format {options.Format}");
        }
    }

    /// <summary>The file's bytes with a leading UTF-8 BOM removed.</summary>
    public static byte[] ReadFileBytes(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new LrkException(ErrorCodes.DataUnreadable, $"cannot read text file '{path}': {e.Message}", e);
        }
        return bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? bytes[3..] : bytes;
    }

    /// <summary>The file decoded as strict UTF-8 (BOM removed).</summary>
    public static string ReadFileText(string path) => Decode(ReadFileBytes(path), path, 0);

    private static string Decode(ReadOnlySpan<byte> bytes, string location, long offset)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            var at = e.Index >= 0 ? $" at byte {offset + e.Index}" : "";
            throw new LrkException(ErrorCodes.DataUnreadable, $"'{location}' is not valid UTF-8{at}", e);
        }
    }

    private static (long Start, long End) Resolve(ByteRange? range, long total, string location, byte[] bytes)
    {
        if (range is null) return (0, total);
        var (start, end) = (range.Value.Start, range.Value.End ?? total);
        if (end > total)
            throw new LrkException(ErrorCodes.BadArgument, $"byte range end {end} is past the end of '{location}' ({total:N0} bytes)");
        if (start >= end)
            throw new LrkException(ErrorCodes.BadArgument, $"byte range [{start}:{end}] of '{location}' is empty (start must be below end)");
        foreach (var bound in new[] { start, end })
        {
            if (bound < total && (bytes[bound] & 0xC0) == 0x80)
            {
                var before = bound;
                while (before > 0 && (bytes[before] & 0xC0) == 0x80) before--;
                var after = bound;
                while (after < total && (bytes[after] & 0xC0) == 0x80) after++;
                throw new LrkException(ErrorCodes.BadArgument,
                    $"byte {bound} of '{location}' is inside a UTF-8 character; the nearest character boundaries are {before} and {after}");
            }
        }
        return (start, end);
    }

    internal static (string Text, int Count) ReadFolder(string folder, string pattern)
    {
        string[] files;
        try
        {
            files = Directory.EnumerateFiles(folder, pattern, SearchOption.AllDirectories)
                .Select(f => (Full: f, Relative: Path.GetRelativePath(folder, f).Replace('\\', '/')))
                .OrderBy(f => f.Relative, StringComparer.Ordinal)
                .Select(f => f.Full)
                .ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new LrkException(ErrorCodes.DataUnreadable, $"cannot list text folder '{folder}': {e.Message}", e);
        }
        if (files.Length == 0) throw new LrkException(ErrorCodes.DataUnreadable, $"folder '{folder}' has no files matching {pattern}");
        return (string.Join("\n\n", files.Select(f => ReadFileText(f).TrimEnd('\r', '\n'))), files.Length);
    }

    private static (string Text, int Count) ReadJsonLines(string path, string field)
    {
        var parts = new List<string>();
        var records = JsonLineRecords.Parse(ReadFileText(path), (line, e) =>
            new LrkException(ErrorCodes.DataUnreadable, $"'{path}' line {line}: not a JSON object ({e.Message})", e));
        foreach (var (lineNumber, record) in records)
        {
            var value = record;
            foreach (var name in field.Split('.'))
            {
                if (value.ValueKind != JsonValueKind.Object || !value.TryGetProperty(name, out value))
                    throw new LrkException(ErrorCodes.DataUnreadable, $"'{path}' line {lineNumber}: no field '{field}'");
            }
            if (value.ValueKind != JsonValueKind.String)
                throw new LrkException(ErrorCodes.DataUnreadable, $"'{path}' line {lineNumber}: field '{field}' is {value.ValueKind}, not a string");
            parts.Add(value.GetString()!);
        }
        if (parts.Count == 0) throw new LrkException(ErrorCodes.DataUnreadable, $"'{path}' has no JSON records");
        return (string.Join("\n\n", parts), parts.Count);
    }
}
