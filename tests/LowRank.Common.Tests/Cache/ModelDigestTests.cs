using System.Security.Cryptography;
using System.Text;
using LowRank.Cache;

namespace LowRank.Tests.Cache;

public class ModelDigestTests
{
    [Fact]
    public void Same_files_in_different_folders_give_the_same_digest_and_any_change_moves_it()
    {
        using var temp = new TempFolder();
        var sidecars = temp.Combine("sidecars");
        temp.Write("a/config.json", """{"dim":8}""");
        temp.Write("a/sub/model.safetensors", "weights");
        temp.Write("a/.git/HEAD", "ignored");
        temp.Write("b/config.json", """{"dim":8}""");
        temp.Write("b/sub/model.safetensors", "weights");

        var a = ModelDigest.Compute(temp.Combine("a"), DigestSidecar.Open(temp.Combine("a"), sidecars));
        var b = ModelDigest.Compute(temp.Combine("b"), DigestSidecar.Open(temp.Combine("b"), sidecars));
        Assert.Equal(a.Digest, b.Digest);
        Assert.Equal(["config.json", "sub/model.safetensors"], a.Files.Select(f => f.Path));
        Assert.Equal("sha256:" + Convert.ToHexStringLower(SHA256.HashData("weights"u8)), a.Files[1].Address);

        temp.Write("b/sub/model.safetensors", "weightz");
        var changed = ModelDigest.Compute(temp.Combine("b"), DigestSidecar.Open(temp.Combine("b"), sidecars));
        Assert.NotEqual(a.Digest, changed.Digest);
    }

    [Fact]
    public void Sidecar_skips_unchanged_files_and_rehashes_when_size_or_time_changes()
    {
        using var temp = new TempFolder();
        var sidecars = temp.Combine("sidecars");
        var model = temp.Combine("m");
        temp.Write("m/w.bin", new string('x', 10_000));
        temp.Write("m/config.json", "{}");

        var first = ModelDigest.Compute(model, DigestSidecar.Open(model, sidecars));
        Assert.Equal(2, first.HashedFiles);
        var second = ModelDigest.Compute(model, DigestSidecar.Open(model, sidecars));
        Assert.Equal(0, second.HashedFiles);
        Assert.Equal(first.Digest, second.Digest);

        // Same size, new content and time: the sidecar must not hide the change.
        File.WriteAllText(Path.Combine(model, "w.bin"), new string('y', 10_000));
        File.SetLastWriteTimeUtc(Path.Combine(model, "w.bin"), DateTime.UtcNow.AddMinutes(1));
        var third = ModelDigest.Compute(model, DigestSidecar.Open(model, sidecars));
        Assert.Equal(1, third.HashedFiles);
        Assert.NotEqual(first.Digest, third.Digest);
    }

    [Fact]
    public void Hugging_face_snapshot_uses_blob_names_without_reading_files()
    {
        using var temp = new TempFolder();
        var hub = temp.Combine("hub");
        var repo = Path.Combine(hub, "models--org--tiny");
        var weights = "safetensors bytes"u8.ToArray();
        var config = """{"model_type":"llama"}"""u8.ToArray();
        var weightsSha256 = Convert.ToHexStringLower(SHA256.HashData(weights));
        // git blob id: SHA-1 of "blob <size>\0<content>" (what the hub uses for non-LFS files); SHA-1 is git's choice, not ours.
#pragma warning disable CA5350
        var configGitSha1 = Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {config.Length}\0"), .. config]));
#pragma warning restore CA5350
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        File.WriteAllBytes(Path.Combine(repo, "blobs", weightsSha256), weights);
        File.WriteAllBytes(Path.Combine(repo, "blobs", configGitSha1), config);
        var commit = new string('c', 40);
        var snapshot = Path.Combine(repo, "snapshots", commit);
        Directory.CreateDirectory(snapshot);
        File.CreateSymbolicLink(Path.Combine(snapshot, "model.safetensors"), $"../../blobs/{weightsSha256}");
        File.CreateSymbolicLink(Path.Combine(snapshot, "config.json"), $"../../blobs/{configGitSha1}");
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), commit);

        var resolved = HuggingFaceCache.ResolveSnapshot("org/tiny", null, hub);
        Assert.Equal(snapshot, resolved);
        var digest = ModelDigest.Compute(resolved, DigestSidecar.Open(resolved, temp.Combine("sidecars")));
        Assert.Equal(0, digest.HashedFiles);
        Assert.Equal(["config.json", "model.safetensors"], digest.Files.Select(f => f.Path));
        Assert.Equal($"git-sha1:{configGitSha1}", digest.Files[0].Address);
        Assert.Equal($"sha256:{weightsSha256}", digest.Files[1].Address);
        Assert.Equal(weights.Length, digest.Files[1].Size);

        var missing = Assert.Throws<LrkException>(() => HuggingFaceCache.ResolveSnapshot("org/absent", null, hub));
        Assert.Equal(ErrorCodes.ModelNotFound, missing.Code);
        Assert.True(HuggingFaceCache.LooksLikeId("meta-llama/Llama-2-7b-hf"));
        Assert.False(HuggingFaceCache.LooksLikeId("models/a/b"));
    }
}
