using System.Text.RegularExpressions;

namespace LowRank.Cache;

/// <summary>
/// Finds a model in the local Hugging Face hub cache (what <c>hf download</c> or transformers leave
/// behind): <c>$HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>, holding
/// <c>models--org--name/{refs/&lt;ref&gt;, snapshots/&lt;commit&gt;/, blobs/}</c>. Nothing is downloaded: a model
/// that is not in the cache is an error that says where it looked.
/// </summary>
public static partial class HuggingFaceCache
{
    public static string HubFolder
    {
        get
        {
            var hub = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
            if (!string.IsNullOrEmpty(hub)) return Path.GetFullPath(hub);
            var home = Environment.GetEnvironmentVariable("HF_HOME");
            if (!string.IsNullOrEmpty(home)) return Path.Combine(Path.GetFullPath(home), "hub");
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "huggingface", "hub");
        }
    }

    /// <summary>True for text shaped like a hub id (<c>org/name</c>), which says nothing about whether it is cached.</summary>
    public static bool LooksLikeId(string text) => HubId().IsMatch(text);

    /// <summary>The snapshot folder of <paramref name="id"/> at <paramref name="revision"/> (a ref such as main, or a commit).</summary>
    public static string ResolveSnapshot(string id, string? revision = null, string? hubFolder = null)
    {
        var hub = hubFolder ?? HubFolder;
        var repo = Path.Combine(hub, "models--" + id.Replace("/", "--", StringComparison.Ordinal));
        if (!Directory.Exists(repo))
            throw new LrkException(ErrorCodes.ModelNotFound, $"'{id}' is neither a folder nor a model in the Hugging Face cache ({repo} does not exist); download it first, e.g. hf download {id}");
        var rev = string.IsNullOrWhiteSpace(revision) ? "main" : revision.Trim();
        string commit;
        if (CommitHash().IsMatch(rev))
        {
            commit = rev;
        }
        else
        {
            var refFile = Path.Combine(repo, "refs", rev);
            if (!File.Exists(refFile)) throw new LrkException(ErrorCodes.ModelNotFound, $"'{id}' has no ref '{rev}' in the Hugging Face cache ({refFile} does not exist)");
            commit = File.ReadAllText(refFile).Trim();
        }
        var snapshot = Path.Combine(repo, "snapshots", commit);
        if (!Directory.Exists(snapshot)) throw new LrkException(ErrorCodes.ModelNotFound, $"'{id}' revision {rev} ({commit}) has no snapshot in the Hugging Face cache ({snapshot})");
        return snapshot;
    }

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
    private static partial Regex HubId();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitHash();
}
