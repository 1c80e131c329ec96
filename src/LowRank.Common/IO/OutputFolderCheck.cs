namespace LowRank.IO;

/// <summary>
/// The checks every command that writes a folder runs before any work (loading, compressing, exporting), so that a
/// bad <c>--out</c> fails in a moment instead of after hours, and a replaced output can never take a source with it.
/// Paths are compared as real paths (<see cref="RealPath"/>: symbolic links resolved in every component), so a link
/// to the model, or an output reached through a link, is seen for what it is.
/// <list type="bullet">
/// <item>The output is not a source, does not contain one (a <c>--force</c> replacement would delete it), and does not
/// lie inside a source folder (<see cref="ErrorCodes.OutputExists"/>). A source folder's entries are resolved too, so
/// an output holding the files a source links to (a Hugging Face snapshot's blobs) is refused as well.</item>
/// <item>It exists only with <c>overwrite</c>, and not as a file (<see cref="ErrorCodes.OutputExists"/>).</item>
/// <item>It can be created: not the file system root, not under /proc, /sys or /dev, not under a file, and its nearest
/// existing ancestor takes a new folder (probed by creating and removing one) (<see cref="ErrorCodes.OutputUnwritable"/>).</item>
/// </list>
/// </summary>
public static class OutputFolderCheck
{
    /// <summary>Entries of a source folder resolved at most (a model folder has a handful).</summary>
    private const int MaxSourceEntries = 10_000;

    private static readonly string[] VirtualFileSystems = ["/proc", "/sys", "/dev"];

    /// <param name="outputFolder">The folder to be written, as the user gave it.</param>
    /// <param name="overwrite">Whether an existing output may be replaced (<c>--force</c>).</param>
    /// <param name="sources">Files and folders the command reads (paths that do not exist are skipped).</param>
    public static void Check(string outputFolder, bool overwrite, params IEnumerable<string?> sources)
    {
        if (string.IsNullOrWhiteSpace(outputFolder))
            throw new LrkException(ErrorCodes.BadArgument, "no output folder given (--output is empty)");
        var output = RealPath.Resolve(outputFolder);
        var parent = Path.GetDirectoryName(output)
            ?? throw new LrkException(ErrorCodes.OutputUnwritable, $"{outputFolder}: cannot write a model folder at the file system root; choose a folder under it");
        if (VirtualFileSystems.FirstOrDefault(v => RealPath.IsSameOrUnder(output, v)) is { } system)
            throw new LrkException(ErrorCodes.OutputUnwritable, $"{outputFolder} is under {system}, a kernel file system that holds no model folders; choose another output folder");
        foreach (var source in sources)
        {
            if (string.IsNullOrWhiteSpace(source) || !Path.Exists(source)) continue;
            CheckAgainstSource(outputFolder, output, source);
        }
        if (File.Exists(output))
            throw new LrkException(ErrorCodes.OutputExists, $"{outputFolder} exists and is a file; choose another output folder");
        if (Directory.Exists(output) && !overwrite)
            throw new LrkException(ErrorCodes.OutputExists, $"{outputFolder} exists; choose another output folder or pass --force to replace it");

        // The writers create the missing ancestors, then a temp folder beside the output: probe the nearest existing one.
        while (!Directory.Exists(parent))
        {
            if (Path.Exists(parent))
                throw new LrkException(ErrorCodes.OutputUnwritable, $"{outputFolder}: {parent} is a file, so no folder can be created under it; choose another output folder");
            parent = Path.GetDirectoryName(parent) ?? throw new LrkException(ErrorCodes.OutputUnwritable, $"{outputFolder}: no existing folder above it");
        }
        var probe = Path.Join(parent, $".lowrank-probe-{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(probe);
            Directory.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(ErrorCodes.OutputUnwritable, $"{outputFolder}: cannot create a folder in {parent} ({e.Message}); choose another output folder");
        }
    }

    private static void CheckAgainstSource(string outputFolder, string output, string source)
    {
        var real = RealPath.Resolve(source);
        if (RealPath.IsSameOrUnder(real, output))
            throw new LrkException(ErrorCodes.OutputExists, $"{outputFolder}: the output would replace the source {source}{Via(source, real)}; choose another folder");
        if (!Directory.Exists(real)) return;
        if (RealPath.IsSameOrUnder(output, real))
            throw new LrkException(ErrorCodes.OutputExists, $"{outputFolder} is inside the source {source}{Via(source, real)}; choose a folder outside it");
        foreach (var entry in Directory.EnumerateFileSystemEntries(real, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true }).Take(MaxSourceEntries))
        {
            if (new FileInfo(entry).LinkTarget is null) continue;
            var target = RealPath.Resolve(entry);
            if (RealPath.IsSameOrUnder(target, output))
                throw new LrkException(ErrorCodes.OutputExists, $"{outputFolder}: the output holds {target}, which the source's {Path.GetRelativePath(real, entry)} links to; choose another folder");
        }
    }

    private static string Via(string spelled, string real) =>
        string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(spelled)), real, StringComparison.Ordinal) ? "" : $" (= {real})";
}
