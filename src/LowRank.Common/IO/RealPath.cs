namespace LowRank.IO;

/// <summary>
/// realpath(3) semantics in managed code: a path with every symbolic link among its components resolved, "." and
/// ".." applied to what the links point to (not to the spelling), and no trailing separator. Components that do not
/// exist (yet) are kept as spelled, so an output folder that is still to be created resolves too.
/// </summary>
public static class RealPath
{
    /// <summary>Links followed in one resolution before giving up (Linux's ELOOP limit).</summary>
    public const int MaxLinks = 40;

    public static string Resolve(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var absolute = Path.IsPathRooted(path) ? path : Path.Combine(Environment.CurrentDirectory, path);
        var root = Path.GetPathRoot(absolute)!;
        var pending = new LinkedList<string>(Split(absolute[root.Length..]));
        var current = root;
        var links = 0;
        while (pending.First is { } first)
        {
            var component = first.Value;
            pending.RemoveFirst();
            if (component is "" or ".") continue;
            if (component == "..")
            {
                current = Path.GetDirectoryName(current) ?? root;
                continue;
            }
            var next = Path.Join(current, component);
            string? target;
            try
            {
                target = new FileInfo(next).LinkTarget;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                target = null; // unreadable: taken as spelled
            }
            if (target is null)
            {
                current = next;
                continue;
            }
            if (++links > MaxLinks)
                throw new LrkException(ErrorCodes.BadArgument, $"{path}: too many levels of symbolic links");
            if (Path.IsPathRooted(target))
            {
                root = Path.GetPathRoot(target)!;
                current = root;
                target = target[root.Length..];
            }
            var parts = Split(target);
            for (var i = parts.Length - 1; i >= 0; i--) pending.AddFirst(parts[i]);
        }
        return current;
    }

    /// <summary>Whether <paramref name="inner"/> is <paramref name="outer"/> itself or lies under it (both real paths).</summary>
    public static bool IsSameOrUnder(string inner, string outer)
    {
        if (string.Equals(inner, outer, StringComparison.Ordinal)) return true;
        var prefix = Path.EndsInDirectorySeparator(outer) ? outer : outer + Path.DirectorySeparatorChar;
        return inner.StartsWith(prefix, StringComparison.Ordinal);
    }

    private static string[] Split(string relative) =>
        relative.Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);
}
