using System.Security.Cryptography;
using NuGet.Configuration;

namespace LowRank.Build.Tasks;

/// <summary>
/// What <c>LowRankRemoteCache</c> names, resolved through the NuGet settings that apply to the project (the
/// nuget.config files from the project folder up, then the user's and the machine's), as <c>dotnet restore</c> and
/// <c>dotnet nuget push</c> resolve a source:
/// <list type="bullet">
/// <item>the <b>name</b> of a package source in those files (enabled or not: a disabled source is never searched by
/// restore, which suits a feed that only holds cache entries);</item>
/// <item>an <b>http(s) URL</b>: a configured source with that URL lends its name and credentials; another URL is used
/// without credentials;</item>
/// <item>otherwise a <b>folder</b>, relative to the project (a text with no path separator that names no source is an
/// error rather than a folder: a mistyped source name must not quietly become an empty folder feed).</item>
/// </list>
/// A configured source carries its credentials from <c>packageSourceCredentials</c> (or from the environment variable
/// <c>NuGetPackageSourceCredentials_&lt;name&gt;</c>, which NuGet reads first), and NuGet.Protocol presents them when
/// the feed asks. The push API key is the property <c>LowRankRemoteCacheApiKey</c>, else the environment variable
/// <see cref="ApiKeyVariable"/>, else the source's entry in nuget.config's <c>apikeys</c>.
/// </summary>
internal sealed class RemoteCacheSource
{
    /// <summary>The environment variable that gives the push API key when the property does not.</summary>
    public const string ApiKeyVariable = "LOWRANK_REMOTE_CACHE_API_KEY";

    private const string CredentialsVariablePrefix = "NuGetPackageSourceCredentials_";

    private readonly ISettings settings;

    private RemoteCacheSource(PackageSource source, string feed, string? name, ISettings settings)
    {
        Source = source;
        Feed = feed;
        Name = name;
        this.settings = settings;
    }

    /// <summary>The NuGet source, with the configured credentials when it is a configured source.</summary>
    public PackageSource Source { get; }

    /// <summary>The feed as used: a URL, or an absolute folder path (what pointer packages record).</summary>
    public string Feed { get; }

    /// <summary>The configured source's name, when the feed is one.</summary>
    public string? Name { get; }

    public bool IsFolder => Source.IsLocal;

    /// <summary>The feed for messages: the URL or folder, and the source's name when it has one.</summary>
    public string Display => Name is null || string.Equals(Name, Feed, StringComparison.Ordinal) ? Feed : $"{Feed} (source '{Name}')";

    /// <summary>Where the credentials came from, for messages about a refusal.</summary>
    public string CredentialOrigin =>
        Name is null ? "no credentials (the URL is no package source in nuget.config, so none of its packageSourceCredentials apply)"
        : !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(CredentialsVariablePrefix + Name)) ? $"the credentials of the environment variable {CredentialsVariablePrefix}{Name}"
        : Source.Credentials is { } c && c.IsValid() ? $"the credentials of user '{c.Username}' from packageSourceCredentials/{Name} in nuget.config"
        : $"no credentials (nuget.config has no packageSourceCredentials for '{Name}')";

    /// <param name="text">The property's value: a source name, a URL, or a folder.</param>
    /// <param name="projectDirectory">Where the nuget.config search starts, and what a folder is relative to.</param>
    public static RemoteCacheSource Resolve(string text, string projectDirectory)
    {
        var trimmed = text.Trim();
        var isUrl = Uri.TryCreate(trimmed, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https";
        var settings = LoadSettings(projectDirectory);
        var sources = new PackageSourceProvider(settings).LoadPackageSources().ToList();
        var configured = sources.FirstOrDefault(s => string.Equals(s.Name, trimmed, StringComparison.OrdinalIgnoreCase))
            ?? (isUrl ? sources.FirstOrDefault(s => s.IsHttp && SameUrl(s.Source, trimmed)) : null);
        if (configured is not null)
        {
            CheckCredentialsReadable(configured);
            var feed = configured.IsLocal ? Path.GetFullPath(Path.Combine(projectDirectory, configured.Source)) : configured.Source;
            return new RemoteCacheSource(configured, feed, configured.Name, settings);
        }
        if (isUrl) return new RemoteCacheSource(new PackageSource(trimmed), trimmed, null, settings);
        if (trimmed.IndexOfAny(['/', '\\']) < 0 && !Directory.Exists(Path.Combine(projectDirectory, trimmed)))
            throw new LrkException(ErrorCodes.BadConfigValue,
                $"LowRankRemoteCache '{trimmed}' is no package source in the nuget.config files that apply to {projectDirectory} " +
                $"(sources: {(sources.Count == 0 ? "none" : string.Join(", ", sources.Select(s => s.Name)))}); for a folder next to the project write ./{trimmed}");
        var folder = Path.GetFullPath(Path.Combine(projectDirectory, trimmed));
        return new RemoteCacheSource(new PackageSource(folder), folder, null, settings);
    }

    /// <summary>The property's key, else <see cref="ApiKeyVariable"/>, else the source's <c>apikeys</c> entry in nuget.config; null when none is set.</summary>
    public string? ApiKey(string? property)
    {
        if (!string.IsNullOrWhiteSpace(property)) return property.Trim();
        if (Environment.GetEnvironmentVariable(ApiKeyVariable) is { Length: > 0 } variable) return variable.Trim();
        if (IsFolder) return null;
        try
        {
            var configured = SettingsUtility.GetDecryptedValueForAddItem(settings, ConfigurationConstants.ApiKeys, Source.Source);
            return string.IsNullOrEmpty(configured) ? null : configured;
        }
        catch (Exception e) when (e is NotSupportedException or PlatformNotSupportedException or CryptographicException or FormatException)
        {
            throw new LrkException(ErrorCodes.RemoteCacheUnauthorized,
                $"the API key for {Display} in nuget.config's apikeys cannot be decrypted here ({e.Message}): NuGet encrypts those with Windows DPAPI; " +
                $"set the property LowRankRemoteCacheApiKey or the environment variable {ApiKeyVariable} instead");
        }
    }

    /// <summary>Where the API key came from, for a refused push.</summary>
    public string ApiKeyOrigin(string? property) =>
        !string.IsNullOrWhiteSpace(property) ? "the property LowRankRemoteCacheApiKey"
        : !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(ApiKeyVariable)) ? $"the environment variable {ApiKeyVariable}"
        : ApiKey(null) is not null ? "apikeys in nuget.config"
        : $"none (set LowRankRemoteCacheApiKey, {ApiKeyVariable}, or apikeys in nuget.config)";

    private static ISettings LoadSettings(string projectDirectory)
    {
        try
        {
            return Settings.LoadDefaultSettings(projectDirectory);
        }
        catch (NuGetConfigurationException e)
        {
            throw new LrkException(ErrorCodes.BadConfigValue, $"cannot read the nuget.config files that apply to {projectDirectory}: {e.Message}");
        }
    }

    /// <summary>An encrypted password (Password, not ClearTextPassword) decrypts only on Windows: say so now, not as a 401 later.</summary>
    private static void CheckCredentialsReadable(PackageSource source)
    {
        if (source.Credentials is not { } credentials) return;
        try
        {
            _ = credentials.Password;
        }
        catch (Exception e) when (e is NotSupportedException or PlatformNotSupportedException or CryptographicException or FormatException)
        {
            throw new LrkException(ErrorCodes.RemoteCacheUnauthorized,
                $"the password of package source '{source.Name}' in nuget.config cannot be decrypted here ({e.Message}): NuGet encrypts Password with Windows DPAPI; " +
                $"use ClearTextPassword (e.g. from a CI secret), or the environment variable {CredentialsVariablePrefix}{source.Name}=Username=…;Password=…");
        }
    }

    private static bool SameUrl(string a, string b) =>
        string.Equals(a.TrimEnd('/'), b.TrimEnd('/'), StringComparison.OrdinalIgnoreCase);
}
