using NuGet.Common;
using NuGet.Configuration;
using NuGet.Packaging;
using NuGet.Packaging.Core;
using NuGet.Packaging.Signing;
using NuGet.Protocol;
using NuGet.Protocol.Core.Types;
using NuGet.Versioning;

namespace LowRank.Build.Tasks;

/// <summary>
/// <c>nuget:Id/Version</c>: a model published as a package (e.g. by a LowRank.Sdk project, or any package holding an
/// HF-layout folder). The global packages folder is tried first (no network); otherwise the package is fetched
/// from the enabled sources of the nuget.config files that apply to the project, and extracted into the global
/// packages folder with NuGet's own lock-and-marker protocol. The model is the one folder in the package that
/// holds a config.json.
/// </summary>
internal static class NuGetModelPackage
{
    public static string Resolve(string reference, string projectDirectory)
    {
        var slash = reference.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || slash == reference.Length - 1 || !NuGetVersion.TryParse(reference[(slash + 1)..], out var version))
            throw new LrkException(ErrorCodes.BadItem, $"'nuget:{reference}' must be nuget:Id/Version with an exact version, e.g. nuget:Contoso.Llama.Base/1.0.0");
        var identity = new PackageIdentity(reference[..slash], version);
        var settings = Settings.LoadDefaultSettings(projectDirectory);
        var globalFolder = SettingsUtility.GetGlobalPackagesFolder(settings);
        var installed = new VersionFolderPathResolver(globalFolder).GetInstallPath(identity.Id, identity.Version);
        if (!File.Exists(Path.Combine(installed, ".nupkg.metadata"))) Download(identity, settings, globalFolder);
        return FindModelFolder(installed, identity);
    }

    private static void Download(PackageIdentity identity, ISettings settings, string globalFolder)
    {
        var sources = new PackageSourceProvider(settings).LoadPackageSources().Where(s => s.IsEnabled).ToList();
        var tried = new List<string>();
        using var cache = new SourceCacheContext();
        foreach (var source in sources)
        {
            tried.Add(source.Source);
            var repository = Repository.Factory.GetCoreV3(source);
            var finder = repository.GetResource<FindPackageByIdResource>();
            if (finder is null) continue;
            using var stream = new MemoryStream();
            bool found;
            try
            {
                found = finder.CopyNupkgToStreamAsync(identity.Id, identity.Version, stream, cache, NullLogger.Instance, CancellationToken.None).GetAwaiter().GetResult();
            }
            catch (FatalProtocolException)
            {
                continue; // an unreachable feed is not fatal while another one may hold the package
            }
            if (!found) continue;
            stream.Position = 0;
            var policy = ClientPolicyContext.GetClientPolicy(settings, NullLogger.Instance);
            using var result = GlobalPackagesFolderUtility.AddPackageAsync(source.Source, identity, stream, globalFolder, Guid.Empty, policy, NullLogger.Instance, CancellationToken.None)
                .GetAwaiter().GetResult();
            if (result.Status == DownloadResourceResultStatus.Available) return;
        }
        throw new LrkException(ErrorCodes.PackageNotFound,
            $"model package {identity.Id} {identity.Version} is in no configured feed (tried: {(tried.Count == 0 ? "no enabled sources" : string.Join(", ", tried))})");
    }

    private static string FindModelFolder(string installed, PackageIdentity identity)
    {
        var folders = Directory.EnumerateFiles(installed, "config.json", SearchOption.AllDirectories)
            .Select(Path.GetDirectoryName).OfType<string>().Distinct(StringComparer.Ordinal).ToList();
        return folders.Count switch
        {
            1 => folders[0],
            0 => throw new LrkException(ErrorCodes.BadArtifact, $"package {identity.Id} {identity.Version} holds no model (no folder with a config.json)"),
            _ => throw new LrkException(ErrorCodes.BadArtifact, $"package {identity.Id} {identity.Version} holds {folders.Count} models; a model package must hold exactly one"),
        };
    }
}
