namespace LowRank.Artifacts;

/// <summary>One way an artifact differs from its manifest.</summary>
public sealed record VerificationProblem(string Path, string Problem);

public sealed record VerificationResult(string Folder, int FilesChecked, IReadOnlyList<VerificationProblem> Problems)
{
    public bool Ok => Problems.Count == 0;
}

/// <summary>
/// Re-hashes every file of an artifact against <c>lowrank-manifest.json</c>: each listed file must exist with the
/// listed size and SHA-256, and no other file may be present (the manifest lists everything but itself), so a
/// tampered, truncated, missing or smuggled-in file is found. The <c>lowrank</c> section of <c>config.json</c> is
/// read too, so an artifact whose config cannot be understood does not pass.
/// </summary>
public static class ArtifactVerifier
{
    public static VerificationResult Verify(string artifactFolder, IProgress<ProgressUpdate>? progress = null, CancellationToken cancellationToken = default)
    {
        var folder = Path.GetFullPath(artifactFolder);
        if (!Directory.Exists(folder))
            throw new LrkException(File.Exists(folder) ? ErrorCodes.BadArtifact : ErrorCodes.ModelNotFound,
                File.Exists(folder) ? $"{artifactFolder}: an artifact is a folder, not a file" : $"{artifactFolder}: no such artifact folder");
        var manifest = ArtifactManifest.Read(folder);
        var problems = new List<VerificationProblem>();
        var listed = new HashSet<string>(StringComparer.Ordinal) { ArtifactFormat.ManifestFileName };
        for (var i = 0; i < manifest.Files.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var file = manifest.Files[i];
            progress?.Report(new ProgressUpdate("verify", file.Path, i, manifest.Files.Count));
            if (!listed.Add(file.Path))
            {
                problems.Add(new VerificationProblem(file.Path, "listed twice in the manifest"));
                continue;
            }
            var path = Path.GetFullPath(Path.Combine(folder, file.Path));
            if (!path.StartsWith(folder + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                problems.Add(new VerificationProblem(file.Path, "points outside the artifact folder"));
                continue;
            }
            if (!File.Exists(path))
            {
                problems.Add(new VerificationProblem(file.Path, "missing"));
                continue;
            }
            var size = new FileInfo(path).Length;
            if (size != file.Size)
            {
                problems.Add(new VerificationProblem(file.Path, $"size {size} bytes, manifest says {file.Size}"));
                continue;
            }
            var sha = ArtifactFiles.Sha256(path, cancellationToken);
            if (!string.Equals(sha, file.Sha256, StringComparison.OrdinalIgnoreCase))
                problems.Add(new VerificationProblem(file.Path, $"SHA-256 {sha[..12]}…, manifest says {file.Sha256[..Math.Min(12, file.Sha256.Length)]}…"));
        }
        foreach (var path in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var relative = Path.GetRelativePath(folder, path).Replace('\\', '/');
            // compress --format safetensors;onnx puts the ONNX export in onnx/: a folder of its own, not the artifact's.
            if (relative.StartsWith(ModelFormats.OnnxSubfolder + "/", StringComparison.Ordinal)) continue;
            if (!listed.Contains(relative)) problems.Add(new VerificationProblem(relative, "not listed in the manifest"));
        }
        if (problems.Count == 0 && LowRankSection.Read(folder) is null)
            problems.Add(new VerificationProblem(ArtifactFormat.ConfigFileName, $"has no '{ArtifactFormat.LowRankSectionName}' section"));
        return new VerificationResult(folder, manifest.Files.Count, problems);
    }
}
