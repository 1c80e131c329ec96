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
    public static List<ManifestFile> Describe(string folder, IReadOnlyCollection<string> exclude, CancellationToken cancellationToken = default)
    {
        var files = new List<ManifestFile>();
        foreach (var path in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(folder, path).Replace('\\', '/');
            if (exclude.Contains(relative)) continue;
            files.Add(new ManifestFile(relative, new FileInfo(path).Length, Sha256(path, cancellationToken)));
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
        target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(target));
        var parent = Path.GetDirectoryName(target) ?? throw new LrkException(ErrorCodes.BadArgument, $"{target}: cannot write a model folder at the file system root");
        var name = Path.GetFileName(target);
        if (File.Exists(target))
            throw new LrkException(ErrorCodes.OutputExists, $"{target} exists and is a file; choose another output folder");
        if (Directory.Exists(target) && !overwrite)
            throw new LrkException(ErrorCodes.OutputExists, $"{target} exists; choose another output folder or pass --force to replace it");
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{name}.lowrank-{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        string? displaced = null;
        try
        {
            var result = write(temp);
            if (Directory.Exists(target))
            {
                displaced = Path.Combine(parent, $".{name}.lowrank-{Guid.NewGuid():N}.old");
                Directory.Move(target, displaced);
            }
            Directory.Move(temp, target);
            if (displaced is not null) TryDelete(displaced);
            return result;
        }
        catch
        {
            TryDelete(temp);
            if (displaced is not null && Directory.Exists(displaced) && !Directory.Exists(target)) Directory.Move(displaced, target);
            throw;
        }
    }

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
