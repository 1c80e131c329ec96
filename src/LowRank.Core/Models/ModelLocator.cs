using System.Text.RegularExpressions;

namespace LowRank.Models;

/// <summary>
/// Turns what a user typed into a model folder: an existing folder (or a file inside one), else a Hugging Face hub
/// id <c>org/name</c> or <c>org/name@revision</c> looked up, offline, in the local HF cache
/// (<c>models--org--name/refs/&lt;revision&gt;</c> holds a commit hash; <c>snapshots/&lt;hash&gt;/</c> holds the files,
/// usually symlinks into <c>blobs/</c>). Nothing is ever downloaded.
/// </summary>
public static partial class ModelLocator
{
    /// <summary>The HF hub cache: <c>$HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>.</summary>
    public static string HubCache
    {
        get
        {
            var hubCache = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
            if (!string.IsNullOrEmpty(hubCache)) return Path.GetFullPath(hubCache);
            var home = Environment.GetEnvironmentVariable("HF_HOME");
            if (!string.IsNullOrEmpty(home)) return Path.Combine(Path.GetFullPath(home), "hub");
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var cacheRoot = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(cacheRoot, "huggingface", "hub");
        }
    }

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
        var match = HubId().Match(pathOrId);
        if (match.Success)
        {
            var org = match.Groups["org"].Value;
            var name = match.Groups["name"].Value;
            var revision = match.Groups["rev"].Success ? match.Groups["rev"].Value : null;
            var repo = Path.Combine(hubCache, $"models--{org}--{name}");
            var snapshot = FindSnapshot(repo, revision, looked);
            if (snapshot is not null) return snapshot;
        }
        else
        {
            looked.Add($"'{pathOrId}' is not a Hugging Face id (org/name or org/name@revision), so the hub cache was not searched");
        }
        throw new LrkException(ErrorCodes.ModelNotFound,
            $"model '{pathOrId}' not found; looked at: {string.Join("; ", looked)}. Models are never downloaded: " +
            "pass a folder, or fetch it once with `hf download ORG/NAME` (huggingface_hub's CLI; HF_HUB_CACHE/HF_HOME move the cache)");
    }

    private static string? FindSnapshot(string repo, string? revision, List<string> looked)
    {
        var snapshots = Path.Combine(repo, "snapshots");
        if (!Directory.Exists(repo))
        {
            looked.Add($"{repo} (not in the Hugging Face cache)");
            return null;
        }

        var wanted = revision ?? "main";
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
