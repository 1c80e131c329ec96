using System.IO.Compression;
using System.Net;
using LowRank.Cache;
using NuGet.Common;
using NuGet.Configuration;
using NuGet.Packaging;
using NuGet.Packaging.Core;
using NuGet.Protocol;
using NuGet.Protocol.Core.Types;
using NuGet.Versioning;

namespace LowRank.Build.Tasks;

/// <summary>
/// A remote cache of compressed models on a NuGet feed (an http(s) v3 feed or a local/shared folder): one package
/// per cache entry, <c>LowRank.Cache.&lt;key&gt;</c> (the full 64-hex key, so the id alone names the entry)
/// version 1.0.0 (an entry never changes, so there is only ever one version), package type LowRankCacheEntry, the
/// entry's files under <c>entry/</c> and its record as <c>entry/entry.json</c>.
/// A fetched package is trusted no further than its record: the record must be for the requested key (its key
/// fields hash to the key), the package must hold exactly the recorded files, and every file's size and SHA-256
/// are checked while it is committed to the local cache, under the key's lock, through <c>.tmp/</c>. Anything
/// else is rejected (LRK5003 malformed, LRK5002 contents differ) and nothing is installed.
/// </summary>
internal sealed class RemoteCache
{
    public const string PackageIdPrefix = "LowRank.Cache.";
    public const string PackageTypeName = "LowRankCacheEntry";
    public const string EntryFolder = "entry";
    public static readonly NuGetVersion EntryVersion = new(1, 0, 0);

    private readonly RemoteCacheSource location;
    private readonly PackageSource source;

    /// <param name="feed">A package source name from nuget.config, a feed URL, or a folder (relative to <paramref name="projectDirectory"/>); see <see cref="RemoteCacheSource"/>.</param>
    /// <param name="projectDirectory">Where the nuget.config search starts.</param>
    public RemoteCache(string feed, string projectDirectory)
    {
        location = RemoteCacheSource.Resolve(feed, projectDirectory);
        source = location.Source;
    }

    /// <summary>The feed as used: a URL, or an absolute folder path.</summary>
    public string Feed => location.Feed;

    /// <summary>The feed for messages (with its source name when it has one).</summary>
    public string Display => location.Display;

    public bool IsFolder => location.IsFolder;

    public static string PackageId(string key) => PackageIdPrefix + key;

    public static string Describe(string key) => $"{PackageId(key)} {EntryVersion}";

    /// <summary>
    /// Under the key's lock: downloads the key's package into the cache's <c>.tmp/</c>, checks it and commits it as
    /// the local entry. Null when the feed has no package for the key (a folder feed that does not exist yet is an
    /// empty feed). An unreachable feed is LRK5007; a package that fails a check is LRK5003 or LRK5002.
    /// </summary>
    /// <param name="expected">When set (a pointer package's manifest), the entry must also hold exactly these files.</param>
    public CacheEntry? TryFetch(ModelCache cache, CacheLock held, CacheKey key, IReadOnlyList<CacheFile>? expected, CancellationToken cancellation)
    {
        if (IsFolder && !Directory.Exists(Feed)) return null;
        var temp = cache.PrepareTemp(held, key.Hash);
        try
        {
            Directory.CreateDirectory(temp);
            var nupkg = Path.Combine(temp, "download.nupkg");
            bool found;
            using (var stream = new FileStream(nupkg, FileMode.CreateNew, FileAccess.Write))
            {
                try
                {
                    found = Run(async () => await (await Finder(cancellation).ConfigureAwait(false))
                        .CopyNupkgToStreamAsync(PackageId(key.Hash), EntryVersion, stream, NoCaching(), NullLogger.Instance, cancellation).ConfigureAwait(false), "download from");
                }
                catch (Exception e) when (Unwrap(e) is InvalidDataException or PackagingException or System.Xml.XmlException or InvalidOperationException)
                {
                    // A folder feed's reader opens the package to read its identity: an empty, truncated or non-zip file fails there.
                    var cause = Unwrap(e);
                    throw new LrkException(ErrorCodes.CacheCorrupt, $"{Where(key)} is damaged and was not installed ({cause.GetType().Name}: {cause.Message}); delete it from the feed");
                }
            }
            if (!found) return null;
            var files = Path.Combine(temp, "files");
            var record = Extract(nupkg, key, files);
            if (expected is not null && ModelCache.Differences(expected, record.Files) is { Count: > 0 } differences)
                throw new LrkException(ErrorCodes.HashMismatch, $"{Where(key)} holds other files than the package manifest lists: {string.Join("; ", differences)}");
            File.Delete(nupkg); // before the commit, so a large model is on disk twice for as short a time as possible
            try
            {
                return cache.Commit(held, key, files, record.Files);
            }
            catch (LrkException e) when (e.Code == ErrorCodes.HashMismatch)
            {
                throw new LrkException(ErrorCodes.HashMismatch, $"{Where(key)} was rejected and nothing was installed: its files do not match its entry.json ({e.Message}); delete the package from the feed, or unset LowRankRemoteCache");
            }
        }
        finally
        {
            ModelCache.DeleteTree(temp);
        }
    }

    /// <summary>Whether the feed holds the key's package (for pack: a pointer must point at something).</summary>
    public bool Contains(string key, CancellationToken cancellation)
    {
        if (IsFolder && !Directory.Exists(Feed)) return false;
        return Run(async () => await (await Finder(cancellation).ConfigureAwait(false))
            .DoesPackageExistAsync(PackageId(key), EntryVersion, NoCaching(), NullLogger.Instance, cancellation).ConfigureAwait(false), "look up");
    }

    /// <summary>
    /// Packs the entry into a work folder under the cache's <c>.tmp/</c> and pushes it: NuGet's push for an http feed,
    /// an atomic copy for a folder. Holds the key's lock meanwhile, so <c>cache prune</c> neither deletes the entry
    /// nor takes the work folder for an orphan. A package already on a folder feed is left alone (entries are
    /// immutable, and two builds may push the same key at once; an http feed is asked to skip duplicates).
    /// Returns false when the folder feed already had it. LRK5007 on failure.
    /// </summary>
    /// <param name="apiKeyProperty">LowRankRemoteCacheApiKey; when empty the key comes from the environment or nuget.config (<see cref="RemoteCacheSource.ApiKey"/>).</param>
    public bool Push(ModelCache cache, CacheEntry entry, string? apiKeyProperty, CancellationToken cancellation)
    {
        using var held = cache.Lock(entry.Key, TimeSpan.FromHours(24), cancellation);
        var workFolder = Path.Combine(cache.TempFolder, $"{entry.Key}.push.{Environment.ProcessId}.{Guid.NewGuid():N}");
        try
        {
            if (IsFolder && File.Exists(FolderPackagePath(entry.Key))) return false;
            Directory.CreateDirectory(workFolder);
            var nupkg = Path.Combine(workFolder, $"{PackageId(entry.Key)}.{EntryVersion}.nupkg");
            var builder = new PackageBuilder
            {
                Id = PackageId(entry.Key),
                Version = EntryVersion,
                Description = $"LowRank.Build remote cache entry {entry.Key}: {entry.Record.KeyFields["method"]} at ratio {entry.Record.KeyFields["ratio"]} of source {entry.Record.KeyFields["source"]}. Not meant to be referenced by projects.",
                DevelopmentDependency = true,
            };
            builder.Authors.Add("LowRank.Build");
            builder.PackageTypes.Add(new PackageType(PackageTypeName, new Version(1, 0)));
            foreach (var file in entry.Record.Files)
                builder.Files.Add(new PhysicalPackageFile { SourcePath = entry.FilePath(file), TargetPath = $"{EntryFolder}/{file.Path}" });
            builder.Files.Add(new PhysicalPackageFile { SourcePath = Path.Combine(entry.Folder, CacheEntry.RecordFileName), TargetPath = $"{EntryFolder}/{CacheEntry.RecordFileName}" });
            using (var stream = new FileStream(nupkg, FileMode.CreateNew, FileAccess.Write))
            {
                builder.Save(stream);
            }
            if (IsFolder) return PublishToFolder(nupkg, entry.Key);
            var apiKey = location.ApiKey(apiKeyProperty);
            Run(async () =>
            {
                var update = await Repository.Factory.GetCoreV3(source).GetResourceAsync<PackageUpdateResource>(cancellation).ConfigureAwait(false)
                    ?? throw new LrkException(ErrorCodes.RemoteCacheFailed, $"the remote cache {Feed} does not accept pushes");
                await update.PushAsync([nupkg], symbolSource: null, timeoutInSecond: 3600, disableBuffering: false, getApiKey: _ => apiKey,
                    getSymbolApiKey: _ => null, noServiceEndpoint: false, skipDuplicate: true, allowSnupkg: false, allowInsecureConnections: source.AllowInsecureConnections, NullLogger.Instance).ConfigureAwait(false);
                return true;
            }, "push to", () => $"check the API key: it came from {location.ApiKeyOrigin(apiKeyProperty)}");
            return true;
        }
        finally
        {
            ModelCache.DeleteTree(workFolder);
        }
    }

    /// <summary>
    /// The folder's flat layout (<c>&lt;feed&gt;/LowRank.Cache.&lt;key&gt;.1.0.0.nupkg</c>, which NuGet reads as a local
    /// feed), written as a hidden temp file and renamed: NuGet's own folder push copies in place, and a build
    /// reading the feed at that moment would see half a package. An existing package is kept (entries never change).
    /// </summary>
    private bool PublishToFolder(string nupkg, string key)
    {
        Directory.CreateDirectory(Feed);
        var target = FolderPackagePath(key);
        if (File.Exists(target)) return false;
        var temp = Path.Combine(Feed, $".{Path.GetFileName(target)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.Copy(nupkg, temp);
            try
            {
                File.Move(temp, target, overwrite: false);
                return true;
            }
            catch (IOException) when (File.Exists(target))
            {
                return false; // another build published the same entry first
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LrkException(ErrorCodes.RemoteCacheFailed, $"cannot write {target}: {e.Message}");
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private string FolderPackagePath(string key) => Path.Combine(Feed, $"{PackageId(key)}.{EntryVersion}.nupkg");

    private string Where(CacheKey key) => $"remote cache package {Describe(key.Hash)} from {Feed}";

    /// <summary>Checks the package's identity (NuGet's reader) and layout, record and files (<see cref="CachePackage"/>) and unpacks exactly the recorded files into <paramref name="folder"/>.</summary>
    private CacheEntryRecord Extract(string nupkg, CacheKey key, string folder)
    {
        using (CachePackageLayout.Open(nupkg, Where(key))) { } // LRK5003 unless a zip of NuGet's parts and entry/ only
        try
        {
            using var reader = new PackageArchiveReader(nupkg);
            var identity = reader.GetIdentity();
            if (!string.Equals(identity.Id, PackageId(key.Hash), StringComparison.OrdinalIgnoreCase) || identity.Version != EntryVersion)
                throw new LrkException(ErrorCodes.CacheCorrupt, $"{Where(key)} says it is {identity.Id} {identity.Version}");
        }
        catch (Exception e) when (e is InvalidDataException or PackagingException or System.Xml.XmlException)
        {
            throw new LrkException(ErrorCodes.CacheCorrupt, $"{Where(key)} is damaged ({e.GetType().Name}: {e.Message})");
        }
        return CachePackage.Extract(nupkg, key, folder, Where(key)).Record;
    }

    private async Task<FindPackageByIdResource> Finder(CancellationToken cancellation) =>
        await Repository.Factory.GetCoreV3(source).GetResourceAsync<FindPackageByIdResource>(cancellation).ConfigureAwait(false)
        ?? throw new LrkException(ErrorCodes.RemoteCacheFailed, $"the remote cache {Feed} is not a NuGet feed");

    /// <summary>
    /// Never the http cache: a model can be gigabytes (it would be written twice), and a "not there" answer must
    /// not be remembered once another build has pushed the entry.
    /// </summary>
    private static SourceCacheContext NoCaching() => new() { NoCache = true, DirectDownload = true };

    /// <summary>
    /// Runs a feed operation synchronously (MSBuild tasks are). A refusal (401 or 403) is LRK5009, naming where the
    /// credentials or the key came from; any other failure to reach or read the feed is LRK5007.
    /// </summary>
    /// <param name="forbiddenHint">What a 403 means for this operation (a push: the API key).</param>
    private T Run<T>(Func<Task<T>> operation, string what, Func<string>? forbiddenHint = null)
    {
        try
        {
            return operation().GetAwaiter().GetResult();
        }
        catch (Exception e) when (Unwrap(e) is FatalProtocolException or HttpRequestException or IOException or UnauthorizedAccessException or TaskCanceledException { CancellationToken.IsCancellationRequested: false })
        {
            var cause = Unwrap(e);
            var inner = cause.InnerException is { } i ? $" ({i.Message})" : "";
            throw Refusal(cause) switch
            {
                HttpStatusCode.Unauthorized => new LrkException(ErrorCodes.RemoteCacheUnauthorized,
                    $"the remote cache {Display} refused the credentials (401 Unauthorized) when asked to {what} it; NuGet presented {location.CredentialOrigin}"),
                HttpStatusCode.Forbidden => new LrkException(ErrorCodes.RemoteCacheUnauthorized,
                    $"the remote cache {Display} refused to {what} it (403 Forbidden); {forbiddenHint?.Invoke() ?? $"NuGet presented {location.CredentialOrigin}"}"),
                _ => new LrkException(ErrorCodes.RemoteCacheFailed, $"cannot {what} the remote cache {Feed}: {cause.Message}{inner}"),
            };
        }
    }

    /// <summary>401 or 403 anywhere in the chain (NuGet wraps the http failure in its own exceptions, or only says it in the message).</summary>
    private static HttpStatusCode? Refusal(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is HttpRequestException { StatusCode: HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden } http) return http.StatusCode;
            if (x.Message.Contains("401 (", StringComparison.Ordinal) || x.Message.Contains("401 Unauthorized", StringComparison.Ordinal)) return HttpStatusCode.Unauthorized;
            if (x.Message.Contains("403 (", StringComparison.Ordinal) || x.Message.Contains("403 Forbidden", StringComparison.Ordinal)) return HttpStatusCode.Forbidden;
        }
        return null;
    }

    private static Exception Unwrap(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } aggregate) e = aggregate.InnerExceptions[0];
        return e;
    }
}
