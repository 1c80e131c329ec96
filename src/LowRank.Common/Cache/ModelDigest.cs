using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace LowRank.Cache;

/// <summary>One file of a digested model: its path relative to the model root ('/'-separated), size and content address.</summary>
/// <param name="Address"><c>sha256:&lt;hex&gt;</c>, or <c>git-sha1:&lt;hex&gt;</c> for a small file of a Hugging Face cache snapshot (its blob name).</param>
public sealed record ModelFileDigest(string Path, long Size, string Address);

/// <summary>The digest of a model (a folder or a single file) and the per-file addresses it was made from.</summary>
/// <param name="Digest"><c>sha256:&lt;hex&gt;</c> over the lines "path\tsize\taddress\n" of every file, sorted by path.</param>
/// <param name="HashedFiles">How many files had to be read this time (0 when the sidecar or the HF blob names served all).</param>
public sealed record ModelDigestResult(string Digest, IReadOnlyList<ModelFileDigest> Files, int HashedFiles);

/// <summary>
/// A content digest of a source model that does not depend on where it lies: the same files give the same digest
/// in any folder, on any machine. Files are found recursively; names starting with '.' (.git, .cache,
/// .gitattributes) are skipped because they are not part of the model.
/// <para>Hugging Face cache fast path: in <c>models--org--name/snapshots/&lt;commit&gt;/</c> every file is a
/// symbolic link to <c>blobs/&lt;address&gt;</c>, where the address is the file's SHA-256 (LFS files) or its git
/// blob SHA-1 (small files). Those names are content addresses already, so they are used without reading the
/// file. Every other file is hashed through a <see cref="DigestSidecar"/>.</para>
/// </summary>
public static partial class ModelDigest
{
    public static ModelDigestResult Compute(string modelPath, DigestSidecar? sidecar = null)
    {
        var full = Path.GetFullPath(modelPath);
        var isFile = File.Exists(full);
        if (!isFile && !Directory.Exists(full)) throw new LrkException(ErrorCodes.ModelNotFound, $"model not found: {modelPath}");
        var root = isFile ? Path.GetDirectoryName(full)! : full;
        sidecar ??= DigestSidecar.Open(root);
        var hashedBefore = sidecar.HashedCount;

        var files = new List<ModelFileDigest>();
        foreach (var file in isFile ? [full] : EnumerateModelFiles(full))
        {
            var relative = Path.GetRelativePath(root, file).Replace('\\', '/');
            files.Add(Describe(file, relative, sidecar));
        }
        if (files.Count == 0) throw new LrkException(ErrorCodes.ModelNotFound, $"model folder {modelPath} holds no files");
        files.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        sidecar.Save();
        return new ModelDigestResult("sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Manifest(files)))),
            files, sidecar.HashedCount - hashedBefore);
    }

    public static string Manifest(IEnumerable<ModelFileDigest> files)
    {
        var text = new StringBuilder();
        foreach (var f in files) text.Append(f.Path).Append('\t').Append(f.Size).Append('\t').Append(f.Address).Append('\n');
        return text.ToString();
    }

    public static IEnumerable<string> EnumerateModelFiles(string folder)
    {
        var options = new EnumerationOptions { RecurseSubdirectories = false, AttributesToSkip = 0, IgnoreInaccessible = false };
        foreach (var entry in Directory.EnumerateFileSystemEntries(folder, "*", options).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(entry);
            if (name.StartsWith('.')) continue;
            if (Directory.Exists(entry))
            {
                foreach (var nested in EnumerateModelFiles(entry)) yield return nested;
            }
            else
            {
                yield return entry;
            }
        }
    }

    private static ModelFileDigest Describe(string file, string relative, DigestSidecar sidecar)
    {
        // Hashing a FIFO would block forever, a device never end.
        IO.RegularFile.Require(file, ErrorCodes.BadCheckpoint, "the files of a model");
        var info = new FileInfo(file);
        if (info.LinkTarget is { } linkTarget)
        {
            var target = info.ResolveLinkTarget(true) as FileInfo;
            if (target is null || !target.Exists) throw new LrkException(ErrorCodes.ModelNotFound, $"{file} is a broken link to {linkTarget}");
            var blobName = target.Name;
            if (string.Equals(target.Directory?.Name, "blobs", StringComparison.Ordinal))
            {
                if (Sha256Name().IsMatch(blobName)) return new ModelFileDigest(relative, target.Length, "sha256:" + blobName);
                if (GitSha1Name().IsMatch(blobName)) return new ModelFileDigest(relative, target.Length, "git-sha1:" + blobName);
            }
            return new ModelFileDigest(relative, target.Length, "sha256:" + sidecar.Sha256(target.FullName));
        }
        return new ModelFileDigest(relative, info.Length, "sha256:" + sidecar.Sha256(file));
    }

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Name();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex GitSha1Name();
}
