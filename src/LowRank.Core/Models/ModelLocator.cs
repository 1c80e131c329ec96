using LowRank.Cache;

namespace LowRank.Models;

/// <summary>
/// Turns what a user typed into a model folder: an existing folder (or a file inside one), else a Hugging Face hub
/// id <c>org/name</c> or <c>org/name@revision</c> looked up, offline, in the local HF cache by
/// <see cref="HuggingFaceCache"/> (the resolver the MSBuild tasks use too). Nothing is ever downloaded.
/// </summary>
public static class ModelLocator
{
    /// <summary>The HF hub cache (<see cref="HuggingFaceCache.HubFolder"/>).</summary>
    public static string HubCache => HuggingFaceCache.HubFolder;

    /// <summary>The folder holding the model's files (a snapshot folder for a hub id), as a full path.</summary>
    public static string Resolve(string pathOrId) => Resolve(pathOrId, HubCache);

    /// <summary><see cref="Resolve(string)"/> against the given hub cache folder.</summary>
    public static string Resolve(string pathOrId, string hubCache)
    {
        if (string.IsNullOrWhiteSpace(pathOrId))
            throw new LrkException(ErrorCodes.ModelNotFound, "no model given (a folder path or a Hugging Face id such as org/name)");
        if (Directory.Exists(pathOrId)) return Path.GetFullPath(pathOrId);
        if (File.Exists(pathOrId)) return Path.GetDirectoryName(Path.GetFullPath(pathOrId))!;

        var looked = new List<string> { $"{Path.GetFullPath(pathOrId)} (no such folder or file)" };
        return HuggingFaceCache.TryFindSnapshot(pathOrId, null, hubCache, looked)
            ?? throw new LrkException(ErrorCodes.ModelNotFound, HuggingFaceCache.NotFoundMessage(pathOrId, looked));
    }
}
