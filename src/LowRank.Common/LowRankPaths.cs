namespace LowRank;

/// <summary>Where LowRank keeps machine-local state. Every location can be moved by an environment variable.</summary>
public static class LowRankPaths
{
    /// <summary><c>$LOWRANK_HOME</c>, else <c>$XDG_CACHE_HOME/lowrank</c>, else <c>~/.cache/lowrank</c>.</summary>
    public static string Home
    {
        get
        {
            var explicitHome = Environment.GetEnvironmentVariable("LOWRANK_HOME");
            if (!string.IsNullOrEmpty(explicitHome)) return Path.GetFullPath(explicitHome);
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var baseDir = !string.IsNullOrEmpty(xdg)
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(baseDir, "lowrank");
        }
    }

    /// <summary>Patched native libraries and the compatibility shim (see TorchBackend).</summary>
    public static string NativeCache => Path.Combine(Home, "native");

    /// <summary>The content-addressed cache of compressed models: <c>$LOWRANK_CACHE</c>, else <c>Home/models</c>.</summary>
    public static string ModelCache
    {
        get
        {
            var explicitCache = Environment.GetEnvironmentVariable("LOWRANK_CACHE");
            return !string.IsNullOrEmpty(explicitCache) ? Path.GetFullPath(explicitCache) : Path.Combine(Home, "models");
        }
    }

    /// <summary>The NuGet global packages folder: <c>$NUGET_PACKAGES</c>, else <c>~/.nuget/packages</c>.</summary>
    public static string NuGetPackages
    {
        get
        {
            var explicitFolder = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
            return !string.IsNullOrEmpty(explicitFolder)
                ? explicitFolder
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        }
    }
}
