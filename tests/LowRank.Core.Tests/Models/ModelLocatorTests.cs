using LowRank.Models;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>Model resolution against a real HF cache layout (refs, snapshots, files symlinked into blobs) in a temp folder:
/// what ModelLocator adds to <see cref="LowRank.Cache.HuggingFaceCache"/> (local folders and files, the places looked, the
/// default hub folder, loading through blob links). Revisions, refs and the single-snapshot rule are the resolver's:
/// LowRank.Common.Tests' HuggingFaceCacheTests.</summary>
public sealed class ModelLocatorTests : IDisposable
{
    private const string Commit = "0123456789abcdef0123456789abcdef01234567";
    private const string OtherCommit = "fedcba9876543210fedcba9876543210fedcba98";
    private readonly TempFolder _temp = new();
    private readonly string _hub;

    public ModelLocatorTests()
    {
        _hub = Path.Combine(_temp.Path, "hub");
        var repo = Path.Combine(_hub, "models--acme--tiny-llama");
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        foreach (var commit in new[] { Commit, OtherCommit })
        {
            var snapshot = Path.Combine(repo, "snapshots", commit);
            Directory.CreateDirectory(snapshot);
            var blob = Path.Combine(repo, "blobs", "sha-" + commit[..8]);
            File.WriteAllText(blob, $$"""{"commit": "{{commit}}"}""");
            File.CreateSymbolicLink(Path.Combine(snapshot, "config.json"), Path.Combine("..", "..", "blobs", "sha-" + commit[..8]));
        }
        File.WriteAllText(Path.Combine(repo, "refs", "main"), Commit + "\n");
    }

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Folder_and_file_paths_resolve_to_the_folder()
    {
        var folder = Path.Combine(_hub, "models--acme--tiny-llama", "snapshots", Commit);
        Assert.Equal(folder, ModelLocator.Resolve(folder, _hub));
        Assert.Equal(folder, ModelLocator.Resolve(Path.Combine(folder, "config.json"), _hub));
    }

    [Fact]
    public void Hub_id_resolves_through_refs_main_and_symlinks_read()
    {
        var folder = ModelLocator.Resolve("acme/tiny-llama", _hub);
        Assert.Equal(Path.Combine(_hub, "models--acme--tiny-llama", "snapshots", Commit), folder);
        Assert.Contains(Commit, File.ReadAllText(Path.Combine(folder, "config.json")));
    }

    [Fact]
    public void Unknown_model_lists_the_places_looked()
    {
        var e = Assert.Throws<LrkException>(() => ModelLocator.Resolve("acme/missing-model", _hub));
        Assert.Equal(ErrorCodes.ModelNotFound, e.Code);
        Assert.Contains("acme/missing-model", e.Message);
        Assert.Contains(Path.Combine(_hub, "models--acme--missing-model"), e.Message);
        Assert.Contains(Path.GetFullPath("acme/missing-model"), e.Message);
    }

    [Fact]
    public void Sharded_model_in_the_cache_loads_through_blob_symlinks()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
        // write a real sharded model, then lay it out as huggingface_hub does: content in blobs/, symlinks in the snapshot
        var staging = Path.Combine(_temp.Path, "staging");
        SafeTensorsWriter.WriteModel(staging,
        [
            new TensorSpec("a", ScalarType.Float32, [300], () => arange(300, dtype: float32)),
            new TensorSpec("b", ScalarType.Float32, [300], () => arange(300, dtype: float32) * 2),
        ], maxShardBytes: 1500);
        var repo = Path.Combine(_hub, "models--acme--sharded");
        var snapshot = Path.Combine(repo, "snapshots", Commit);
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        Directory.CreateDirectory(snapshot);
        File.WriteAllText(Path.Combine(repo, "refs", "main"), Commit);
        var blobIndex = 0;
        foreach (var file in Directory.GetFiles(staging))
        {
            var blob = Path.Combine(repo, "blobs", $"{blobIndex++:x40}");
            File.Move(file, blob);
            File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(file)), Path.GetRelativePath(snapshot, blob));
        }

        using var scope = NewDisposeScope();
        using var store = TensorStore.Open(ModelLocator.Resolve("acme/sharded", _hub));
        Assert.True(store.IsSharded);
        Assert.Equal(2, store.Files.Count);
        Assert.All(store.Files, f => Assert.StartsWith(snapshot, f));
        Assert.Equal(598f, store.Load("b")[299].item<float>());
        Assert.Equal(44850f, store.Load("a").sum().item<float>());
    }

    [Fact]
    public void Hub_cache_follows_HF_HUB_CACHE_then_HF_HOME()
    {
        var savedHub = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
        var savedHome = Environment.GetEnvironmentVariable("HF_HOME");
        try
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", null);
            Environment.SetEnvironmentVariable("HF_HOME", _temp.Path);
            Assert.Equal(_hub, ModelLocator.HubCache);
            Assert.EndsWith(Commit, ModelLocator.Resolve("acme/tiny-llama"));
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", Path.Combine(_temp.Path, "elsewhere"));
            Assert.Equal(Path.Combine(_temp.Path, "elsewhere"), ModelLocator.HubCache);
            Assert.Equal(ErrorCodes.ModelNotFound, Assert.Throws<LrkException>(() => ModelLocator.Resolve("acme/tiny-llama")).Code);
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", savedHub);
            Environment.SetEnvironmentVariable("HF_HOME", savedHome);
        }
    }
}
