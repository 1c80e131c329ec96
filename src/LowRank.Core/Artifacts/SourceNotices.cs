using System.Text.RegularExpressions;

namespace LowRank.Artifacts;

/// <summary>
/// The source model's licence and notice files, which many model licences require to travel with every derivative
/// (Llama's LICENSE and USE_POLICY.md, Apache-2.0's NOTICE): copied into the artifact (and so into the cache entry,
/// model packages and bin/) unchanged, under their own names. The source's README (its model card, which often holds
/// the terms) is kept as <c>SOURCE_README.md</c>, since <c>README.md</c> becomes the artifact's own card; a source that
/// is itself an artifact passes its <c>SOURCE_README.*</c> on and its card is not carried. Only a source folder has
/// notices: a single checkpoint file's neighbours are not the model's.
/// </summary>
public sealed partial record SourceNotices(IReadOnlyList<string> Files, string? License, string? LicenseName, string? LicenseLink)
{
    public const string SourceReadmePrefix = "SOURCE_";

    public static SourceNotices None { get; } = new([], null, null, null);

    /// <summary>True for a licence or notice file name (LICENSE*, LICENCE*, COPYING*, NOTICE*, USE_POLICY*,
    /// ACCEPTABLE_USE_POLICY*, any case), or a README already renamed by a previous compression.</summary>
    public static bool IsNoticeFile(string fileName) => NoticeName().IsMatch(fileName) || SourceReadmeName().IsMatch(fileName);

    /// <summary>The name a source file takes in the artifact, or null when it is no notice: README.md becomes SOURCE_README.md.</summary>
    public static string? ArtifactName(string fileName, IReadOnlyCollection<string> siblings) =>
        IsNoticeFile(fileName) ? fileName
        : ReadmeName().IsMatch(fileName) && !siblings.Any(s => SourceReadmeName().IsMatch(s)) ? SourceReadmePrefix + fileName
        : null;

    /// <summary>Copies the notices of <paramref name="sourceFolder"/> (null: a single-file source, which has none) into
    /// <paramref name="target"/>, and reads the licence the source's card declares in its YAML front matter.</summary>
    public static SourceNotices Copy(string? sourceFolder, string target, CancellationToken cancellationToken = default)
    {
        if (sourceFolder is null || !Directory.Exists(sourceFolder)) return None;
        var names = Directory.EnumerateFiles(sourceFolder).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToList();
        var copied = new List<string>();
        string? card = null;
        foreach (var name in names)
        {
            if (ArtifactName(name, names) is not { } artifactName) continue;
            cancellationToken.ThrowIfCancellationRequested();
            File.Copy(Path.Combine(sourceFolder, name), Path.Combine(target, artifactName), overwrite: true);
            copied.Add(artifactName);
            if (artifactName.StartsWith(SourceReadmePrefix, StringComparison.Ordinal)) card ??= Path.Combine(target, artifactName);
        }
        var fields = card is null ? new Dictionary<string, string>() : FrontMatter(File.ReadAllText(card));
        return new SourceNotices(copied, fields.GetValueOrDefault("license"), fields.GetValueOrDefault("license_name"), fields.GetValueOrDefault("license_link"));
    }

    /// <summary>Top-level scalar keys of a Hugging Face card's YAML front matter (between the first two <c>---</c> lines);
    /// nested keys and lists are skipped. Enough for <c>license</c>, <c>license_name</c>, <c>license_link</c>.</summary>
    public static Dictionary<string, string> FrontMatter(string markdown)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        var lines = markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        if (lines.Length == 0 || lines[0].Trim() != "---") return fields;
        foreach (var line in lines.Skip(1))
        {
            if (line.Trim() == "---") break;
            var match = TopLevelScalar().Match(line);
            if (!match.Success) continue;
            var value = match.Groups["value"].Value.Trim();
            if (value.Length >= 2 && (value[0] == '"' && value[^1] == '"' || value[0] == '\'' && value[^1] == '\'')) value = value[1..^1];
            if (value.Length > 0) fields.TryAdd(match.Groups["key"].Value, value);
        }
        return fields;
    }

    [GeneratedRegex(@"^(LICENSE|LICENCE|COPYING|NOTICE|USE_POLICY|ACCEPTABLE_USE_POLICY)([._\-].*)?$", RegexOptions.IgnoreCase)]
    private static partial Regex NoticeName();

    [GeneratedRegex(@"^README(\..+)?$", RegexOptions.IgnoreCase)]
    private static partial Regex ReadmeName();

    [GeneratedRegex(@"^SOURCE_README(\..+)?$", RegexOptions.IgnoreCase)]
    private static partial Regex SourceReadmeName();

    [GeneratedRegex(@"^(?<key>[A-Za-z_][A-Za-z0-9_\-]*):(?<value>.*?)(\s+#.*)?$")]
    private static partial Regex TopLevelScalar();
}
