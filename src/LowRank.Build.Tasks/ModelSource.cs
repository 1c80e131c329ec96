using LowRank.Cache;

namespace LowRank.Build.Tasks;

/// <summary>
/// What a <c>CompressedModel</c> Include names, resolved to a local folder (or file): a path relative to the
/// project, a Hugging Face hub id found in the local HF cache (metadata <c>Revision</c> picks a ref or commit),
/// or <c>nuget:Id/Version</c>, a model package restored from the feeds in nuget.config.
/// </summary>
internal static class ModelSource
{
    public const string NuGetPrefix = "nuget:";

    public static string Resolve(string include, string projectDirectory, string? revision)
    {
        var text = include.Trim();
        if (text.StartsWith(NuGetPrefix, StringComparison.OrdinalIgnoreCase))
            return NuGetModelPackage.Resolve(text[NuGetPrefix.Length..], projectDirectory);

        var path = Path.GetFullPath(Path.Combine(projectDirectory, text));
        if (Directory.Exists(path) || File.Exists(path)) return path;
        if (HuggingFaceCache.LooksLikeId(text)) return HuggingFaceCache.ResolveSnapshot(text, revision);
        throw new LrkException(ErrorCodes.ModelNotFound,
            $"model '{include}' not found: {path} does not exist, and it is neither a Hugging Face id (org/name) nor {NuGetPrefix}Id/Version");
    }
}
