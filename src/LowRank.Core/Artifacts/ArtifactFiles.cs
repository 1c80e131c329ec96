using System.Security.Cryptography;

namespace LowRank.Artifacts;

/// <summary>File-level helpers: hashing every file of a folder, and the temp-folder-then-rename publication every
/// writer of a model folder uses so that no half-written folder is ever visible under its final name.</summary>
public static class ArtifactFiles
{
    /// <summary>Lower-case hex SHA-256 of a file's content.</summary>
    public static string Sha256(string path, CancellationToken cancellationToken = default)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            sha.AppendData(buffer, 0, read);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Every file under <paramref name="folder"/> except <paramref name="exclude"/> (relative names), with its
    /// size and SHA-256, sorted by relative path ('/'-separated).</summary>
    /// <param name="known">SHA-256 already computed for some files (full path → hex), e.g. while they were written.</param>
    public static List<ManifestFile> Describe(string folder, IReadOnlyCollection<string> exclude, IReadOnlyDictionary<string, string>? known = null,
        CancellationToken cancellationToken = default)
    {
        var files = new List<ManifestFile>();
        foreach (var path in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(folder, path).Replace('\\', '/');
            if (exclude.Contains(relative)) continue;
            var hash = known is not null && known.TryGetValue(Path.GetFullPath(path), out var h) ? h : Sha256(path, cancellationToken);
            files.Add(new ManifestFile(relative, new FileInfo(path).Length, hash));
        }
        files.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return files;
    }

    /// <summary>
    /// Runs <paramref name="write"/> on a fresh hidden folder next to <paramref name="target"/> (same file system, so
    /// the final rename is atomic), then renames it to <paramref name="target"/>. On any exception (cancellation
    /// included) the temp folder is deleted and <paramref name="target"/> is as it was. An existing target is
    /// replaced only when <paramref name="overwrite"/> is set, and then only after the new folder is complete.
    /// </summary>
    public static T PublishFolder<T>(string target, bool overwrite, Func<string, T> write)
    {
        var temp = BeginFolder(target, overwrite);
        try
        {
            var result = write(temp);
            CommitFolder(temp, target);
            return result;
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>The first half of <see cref="PublishFolder"/>: checks <paramref name="target"/> and creates the hidden temp
    /// folder next to it. The caller fills it, then calls <see cref="CommitFolder"/>, or <see cref="AbandonFolder"/> on failure.</summary>
    public static string BeginFolder(string target, bool overwrite)
    {
        target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(target));
        var parent = Path.GetDirectoryName(target) ?? throw new LrkException(ErrorCodes.BadArgument, $"{target}: cannot write a model folder at the file system root");
        var name = Path.GetFileName(target);
        if (File.Exists(target))
            throw new LrkException(ErrorCodes.OutputExists, $"{target} exists and is a file; choose another output folder");
        if (Directory.Exists(target) && !overwrite)
            throw new LrkException(ErrorCodes.OutputExists, $"{target} exists; choose another output folder or pass --force to replace it");
        Directory.CreateDirectory(parent);
        RemoveStaleTemps(parent, name);
        var temp = Path.Combine(parent, $"{TempPrefix(name)}{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        return temp;
    }

    /// <summary>The hidden temp folders of one target: <c>.{name}.lowrank-{pid}-{guid}.tmp</c>.</summary>
    private static string TempPrefix(string name) => $".{name}.lowrank-";

    /// <summary>
    /// Deletes the temp folders an earlier writer of the same target left when it was killed (kill -9, power loss):
    /// those whose process is gone. A live process's folder (another writer of the same target, or this process) is
    /// left alone, and so is a name without a process id (written before ids were part of the name). A process id
    /// from another PID namespace sharing the folder would look dead; its writer then fails at its rename, and no
    /// source or finished output is ever touched (only <c>.tmp</c> folders are removed, never the displaced <c>.old</c> one).
    /// </summary>
    private static void RemoveStaleTemps(string parent, string name)
    {
        var prefix = TempPrefix(name);
        foreach (var folder in Directory.EnumerateDirectories(parent, ".*"))
        {
            var entry = Path.GetFileName(folder);
            if (!entry.StartsWith(prefix, StringComparison.Ordinal) || !entry.EndsWith(".tmp", StringComparison.Ordinal)) continue;
            var rest = entry[prefix.Length..];
            var dash = rest.IndexOf('-');
            if (dash <= 0 || !int.TryParse(rest[..dash], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pid)) continue;
            if (pid == Environment.ProcessId || IsRunning(pid)) continue;
            TryDelete(folder);
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>The second half of <see cref="PublishFolder"/>: renames the complete <paramref name="temp"/> to
    /// <paramref name="target"/>, replacing an existing one only now (and putting it back if the rename fails).</summary>
    public static void CommitFolder(string temp, string target)
    {
        target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(target));
        var parent = Path.GetDirectoryName(target)!;
        var name = Path.GetFileName(target);
        string? displaced = null;
        try
        {
            if (Directory.Exists(target))
            {
                displaced = Path.Combine(parent, $".{name}.lowrank-{Guid.NewGuid():N}.old");
                Directory.Move(target, displaced);
            }
            Directory.Move(temp, target);
            if (displaced is not null) TryDelete(displaced);
        }
        catch
        {
            if (displaced is not null && Directory.Exists(displaced) && !Directory.Exists(target)) Directory.Move(displaced, target);
            throw;
        }
    }

    /// <summary>Deletes a temp folder of <see cref="BeginFolder"/> that will not be committed.</summary>
    public static void AbandonFolder(string temp) => TryDelete(temp);

    private static void TryDelete(string folder)
    {
        try
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The temp folder's hidden name keeps it out of the way; the next run does not reuse it.
        }
    }
}
