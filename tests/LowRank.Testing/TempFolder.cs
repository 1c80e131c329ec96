namespace LowRank.Testing;

/// <summary>A fresh folder under the system temp folder, deleted (read-only cache files included) on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder(string prefix = "lowrank-tests")
        : this(Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}")))
    {
    }

    private TempFolder(DirectoryInfo created)
    {
        Path = created.FullName;
    }

    /// <summary>A fresh folder <c>name-xxxxxxxx</c> (8 hex digits, short for paths that end up in MSBuild's) inside <paramref name="parent"/>.</summary>
    public static TempFolder Inside(string parent, string name) =>
        new(Directory.CreateDirectory(System.IO.Path.Combine(parent, $"{name}-{Guid.NewGuid():N}"[..(name.Length + 9)])));

    public string Path { get; }

    /// <summary>A path inside the folder (nothing is created).</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>A path inside the folder from several parts (nothing is created).</summary>
    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <summary>Writes <paramref name="content"/> to a file inside the folder, creating its folders; returns its path.</summary>
    public string Write(string relative, string content)
    {
        var file = Combine(relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
        System.IO.File.WriteAllText(file, content);
        return file;
    }

    public void Dispose()
    {
        // A test that failed half-way may leave a mapped file open; the OS cleans the temp folder later.
        try { LowRank.Cache.ModelCache.DeleteTree(Path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
