using System.Text.RegularExpressions;

namespace LowRank.Cache;

/// <summary>
/// The one resolver of the local Hugging Face hub cache (what <c>hf download</c> or transformers leave behind), used
/// by the engine (<c>ModelLocator</c>) and the MSBuild tasks alike. The hub folder is <c>$HF_HUB_CACHE</c>, else
/// <c>$HF_HOME/hub</c>, else <c>$XDG_CACHE_HOME/huggingface/hub</c>, else <c>~/.cache/huggingface/hub</c>, holding
/// <c>models--org--name/{refs/&lt;ref&gt;, snapshots/&lt;commit&gt;/, blobs/}</c>. An id is <c>org/name</c> or
/// <c>org/name@revision</c> (a ref such as main, or a commit); without a revision, <c>refs/main</c> names the
/// snapshot, or the only snapshot there is. Nothing is downloaded: a model that is not in the cache is an error that
/// says where it looked.
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
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var cacheRoot = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(cacheRoot, "huggingface", "hub");
        }
    }

    /// <summary>True for text shaped like a hub id (<c>org/name</c> or <c>org/name@revision</c>), which says nothing
    /// about whether it is cached.</summary>
    public static bool LooksLikeId(string text) => HubId().IsMatch(text.Trim());

    /// <summary>The snapshot folder of <paramref name="id"/> (<c>org/name[@revision]</c>) at <paramref name="revision"/>
    /// (which, when set, wins over the id's own), or <see cref="ErrorCodes.ModelNotFound"/> listing where it looked.</summary>
    public static string ResolveSnapshot(string id, string? revision = null, string? hubFolder = null)
    {
        var looked = new List<string>();
        return TryFindSnapshot(id, revision, hubFolder ?? HubFolder, looked)
            ?? throw new LrkException(ErrorCodes.ModelNotFound, NotFoundMessage(id, looked));
    }

    /// <summary>The snapshot folder, or null after adding to <paramref name="looked"/> what was tried and why it failed.</summary>
    public static string? TryFindSnapshot(string id, string? revision, string hubFolder, List<string> looked)
    {
        ArgumentNullException.ThrowIfNull(looked);
        var match = HubId().Match(id.Trim());
        if (!match.Success)
        {
            looked.Add($"'{id}' is not a Hugging Face id (org/name or org/name@revision), so the hub cache was not searched");
            return null;
        }
        var repo = Path.Combine(hubFolder, $"models--{match.Groups["org"].Value}--{match.Groups["name"].Value}");
        var wantedRevision = !string.IsNullOrWhiteSpace(revision) ? revision.Trim() : match.Groups["rev"].Success ? match.Groups["rev"].Value : null;
        return FindSnapshot(repo, wantedRevision, looked);
    }

    /// <summary>The error text for an id that was not found, with what was tried.</summary>
    public static string NotFoundMessage(string pathOrId, IEnumerable<string> looked) =>
        $"model '{pathOrId}' not found; looked at: {string.Join("; ", looked)}. Models are never downloaded: " +
        "pass a folder, or fetch it once with `hf download ORG/NAME` (huggingface_hub's CLI; HF_HUB_CACHE/HF_HOME move the cache)";

    private static string? FindSnapshot(string repo, string? revision, List<string> looked)
    {
        var snapshots = Path.Combine(repo, "snapshots");
        if (!Directory.Exists(repo))
        {
            looked.Add($"{repo} (not in the Hugging Face cache)");
            return null;
        }

        var wanted = revision ?? "main";
        if (wanted.Split('/').Any(part => part is "." or ".."))
        {
            looked.Add($"revision '{wanted}' (not a ref or a commit)");
            return null;
        }
        var refFile = Path.Combine(repo, "refs", wanted);
        if (File.Exists(refFile))
        {
            var commit = File.ReadAllText(refFile).Trim();
            if (!CommitHash().IsMatch(commit))
            {
                looked.Add($"{refFile} (does not hold a commit hash)");
                return null;
            }
            var folder = Path.Combine(snapshots, commit);
            if (Directory.Exists(folder)) return folder;
            looked.Add($"{folder} (refs/{wanted} points to a snapshot that is not in the cache)");
            return null;
        }
        looked.Add($"{refFile} (no such ref)");

        if (revision is not null && CommitHash().IsMatch(revision))
        {
            var folder = Path.Combine(snapshots, revision);
            if (Directory.Exists(folder)) return folder;
            looked.Add($"{folder} (no such snapshot)");
            return null;
        }
        // Caches filled by copying a snapshot, or by a tool that skips refs, still name one snapshot unambiguously.
        if (revision is null && Directory.Exists(snapshots))
        {
            var all = Directory.GetDirectories(snapshots);
            if (all.Length == 1) return all[0];
            looked.Add($"{snapshots} ({all.Length} snapshots and no refs/main to choose one; name a revision with @)");
        }
        return null;
    }

    // HF repo ids: letters, digits, '-', '_', '.'; revisions: branch/tag names (may contain '/') or commit hashes.
    [GeneratedRegex(@"^(?!.*\.\.)(?<org>[A-Za-z0-9][A-Za-z0-9._-]*)/(?<name>[A-Za-z0-9][A-Za-z0-9._-]*)(@(?<rev>[A-Za-z0-9][A-Za-z0-9._/-]*))?$")]
    private static partial Regex HubId();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitHash();
}
