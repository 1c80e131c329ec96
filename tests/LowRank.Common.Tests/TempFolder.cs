namespace LowRank.Tests;

/// <summary>A fresh folder under the system temp folder, deleted (read-only cache files included) on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder(string prefix = "lrk-test")
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public string Write(string relative, string content)
    {
        var file = Combine(relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
        File.WriteAllText(file, content);
        return file;
    }

    public void Dispose()
    {
        try { LowRank.Cache.ModelCache.DeleteTree(Path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
