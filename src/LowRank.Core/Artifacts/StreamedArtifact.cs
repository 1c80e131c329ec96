using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using LowRank.Models;

namespace LowRank.Artifacts;

/// <summary>
/// An artifact whose weight shards are written while its model is still being compressed: the compressor reports each
/// finished block (<see cref="BlockCompleted"/>), and once every block of a shard is finished that shard is written on a
/// background task; <see cref="Complete"/> writes the last shard (embeddings, final norm, head), the index, config.json,
/// the copied files and the manifest, then publishes the folder the way <see cref="ArtifactWriter.Write"/> does (hidden
/// temp folder renamed into place; <see cref="Dispose"/> without <see cref="Complete"/> deletes it).
/// <para>Layout: shards of whole blocks in block order (about <see cref="TargetShardBytes"/> each), then one shard of every
/// tensor outside the blocks, named <c>model-0000i-of-0000n.safetensors</c> with the usual index: the same tensors and bytes
/// as a <see cref="ArtifactWriter.Write"/> of the finished model, grouped differently. Only for a safetensors source
/// whose artifact would be sharded anyway (<see cref="TryBegin"/> returns null otherwise, and the caller writes at the end):
/// small artifacts keep their single file. Writing a 7B model's 6.5 GB of factors with fsync takes seconds, which this
/// takes off the end of the run (BENCHMARKS.md, "GPU").</para>
/// </summary>
public sealed class StreamedArtifact : IDisposable
{
    /// <summary>Target size of one block shard: small enough that the last one, written after the last block, is quick.</summary>
    public const long TargetShardBytes = 1L << 30;

    private readonly ArtifactRequest request;
    private readonly string temp;
    private readonly TensorStore store;
    private readonly FactorDtype factorDtype;
    private readonly int[] shardOfBlock;
    private readonly int shardCount;
    private readonly string[] blockPrefixes;
    private readonly int[] pendingBlocks;
    private readonly List<Task> writes = [];
    private readonly ConcurrentDictionary<string, string> hashes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> shardOfTensor = new(StringComparer.Ordinal);
    private readonly ConcurrentBag<string> modified = [];
    private readonly Stopwatch clock = new();
    private readonly object gate = new();
    private bool completed;

    private StreamedArtifact(ArtifactRequest request, string temp, TensorStore store, FactorDtype factorDtype, int blocksPerShard)
    {
        this.request = request;
        this.temp = temp;
        this.store = store;
        this.factorDtype = factorDtype;
        var model = request.Model;
        shardOfBlock = Enumerable.Range(0, model.BlockCount).Select(b => b / blocksPerShard).ToArray();
        var blockShards = (model.BlockCount + blocksPerShard - 1) / blocksPerShard;
        shardCount = blockShards + 1;
        pendingBlocks = Enumerable.Range(0, blockShards).Select(s => shardOfBlock.Count(x => x == s)).ToArray();
        blockPrefixes = Enumerable.Range(0, model.BlockCount).Select(b => BlockPrefix(model, b)).ToArray();
    }

    /// <summary>Starts a streamed artifact, or returns null when it would be a single file anyway or the source is not a
    /// safetensors folder. Checks the output like <see cref="ArtifactWriter.Write"/>.</summary>
    public static StreamedArtifact? TryBegin(ArtifactRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArtifactWriter.CheckOutput(request.OutputFolder, request.SourcePath, request.Overwrite);
        if (!Directory.Exists(request.SourcePath) || request.Model.BlockCount < 2) return null;
        var factorDtype = ArtifactWriter.ResolveFactorDtype(request.FactorDtype, request.Model.Config);
        var store = TensorStore.Open(request.SourcePath);
        try
        {
            // Estimate from the source: the artifact is smaller than the source (factors replace weights), so a source
            // that fits one file gives an artifact that does too.
            var sourceBytes = store.Entries.Sum(e => e.ByteLength);
            if (sourceBytes <= request.MaxShardBytes) return Dispose(store);
            var blockBytes = BlockSourceBytes(request.Model, store);
            var shardBytes = Math.Min(request.MaxShardBytes, TargetShardBytes);
            var perShard = (int)Math.Clamp(shardBytes / Math.Max(1, blockBytes), 1, request.Model.BlockCount);
            var temp = ArtifactFiles.BeginFolder(request.OutputFolder, request.Overwrite);
            return new StreamedArtifact(request, temp, store, factorDtype, perShard);
        }
        catch
        {
            store.Dispose();
            throw;
        }

        static StreamedArtifact? Dispose(TensorStore s)
        {
            s.Dispose();
            return null;
        }
    }

    /// <summary>Block <paramref name="block"/>'s layers are final (factors on the host): once its shard's blocks all are, the
    /// shard is written in the background. Any thread.</summary>
    public void BlockCompleted(int block)
    {
        lock (gate)
        {
            if (completed) throw new InvalidOperationException("the artifact is complete already");
            var shard = shardOfBlock[block];
            if (--pendingBlocks[shard] != 0) return;
            var blocks = Enumerable.Range(0, shardOfBlock.Length).Where(b => shardOfBlock[b] == shard).ToHashSet();
            writes.Add(Task.Run(() => WriteShard(shard, name => BlockOf(name) is { } b && blocks.Contains(b))));
        }
    }

    /// <summary>Writes what is left and publishes the artifact. <paramref name="final"/> is the request with what is known only
    /// now (provenance, extra content); its model, source and output must be those the stream began with.</summary>
    public ArtifactWriteResult Complete(ArtifactRequest final, IProgress<ProgressUpdate>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(final);
        if (!ReferenceEquals(final.Model, request.Model) || final.SourcePath != request.SourcePath || final.OutputFolder != request.OutputFolder)
            throw new ArgumentException("the final request must name the model, source and output the stream began with", nameof(final));
        lock (gate)
        {
            if (completed) throw new InvalidOperationException("the artifact is complete already");
            completed = true;
        }
        // The manifest's "write" time is what the write took after the compression (the block shards were written beside it).
        clock.Restart();
        try
        {
            progress?.Report(new ProgressUpdate("write", "the remaining shards"));
            // Shards of blocks that were never reported (a method without per-block reports) are written now.
            var written = Task.WhenAll(writes);
            var unreported = Enumerable.Range(0, shardCount - 1).Where(s => pendingBlocks[s] > 0).ToArray();
            var late = unreported.Select(s => Task.Run(() =>
            {
                var blocks = Enumerable.Range(0, shardOfBlock.Length).Where(b => shardOfBlock[b] == s).ToHashSet();
                WriteShard(s, name => BlockOf(name) is { } b && blocks.Contains(b));
            }, CancellationToken.None)).ToList();
            late.Add(Task.Run(() => WriteShard(shardCount - 1, name => BlockOf(name) is null), CancellationToken.None));
            Task.WhenAll(late.Append(written)).GetAwaiter().GetResult();
            cancellationToken.ThrowIfCancellationRequested();

            var plan = new TensorPlan(request.Model, store, factorDtype, request.TargetLinears, quantizer: request.Quantizer);
            var missing = plan.Specs.Where(s => !shardOfTensor.ContainsKey(s.Name)).Select(s => s.Name).ToList();
            if (missing.Count > 0) throw new InvalidOperationException($"streamed artifact: {missing.Count} tensors were not written ({string.Join(", ", missing.Take(3))})");
            SafeTensorsWriter.WriteIndex(temp, shardOfTensor, plan.Specs.Sum(SafeTensorsWriter.ByteLengthOf));
            var result = ArtifactWriter.Finish(temp, final, plan.Section(final.Method, final.RequestedRatio), modified.Concat(plan.ModifiedTensors), hashes,
                clock, progress, cancellationToken);
            ArtifactFiles.CommitFolder(temp, request.OutputFolder);
            return result;
        }
        catch
        {
            ArtifactFiles.AbandonFolder(temp);
            throw;
        }
        finally
        {
            store.Dispose();
        }
    }

    private void WriteShard(int shard, Func<string, bool> include)
    {
        var plan = new TensorPlan(request.Model, store, factorDtype, request.TargetLinears, include, request.Quantizer);
        var name = string.Create(CultureInfo.InvariantCulture, $"model-{shard + 1:D5}-of-{shardCount:D5}.safetensors");
        SafeTensorsWriter.WriteShard(Path.Combine(temp, name), plan.Specs, hashes);
        foreach (var spec in plan.Specs) shardOfTensor[spec.Name] = name;
        foreach (var tensor in plan.ModifiedTensors) modified.Add(tensor);
    }

    /// <summary>The block a source tensor belongs to (its name starts with the block's prefix), or null (embeddings, final norm, head).</summary>
    private int? BlockOf(string name)
    {
        for (var b = 0; b < blockPrefixes.Length; b++)
            if (name.StartsWith(blockPrefixes[b], StringComparison.Ordinal)) return b;
        return null;
    }

    /// <summary>The name prefix every tensor of block <paramref name="block"/> shares: the common start of its linears' names
    /// up to a dot (<c>model.layers.3.</c>, <c>transformer.h.3.</c>, <c>model.decoder.layers.3.</c>).</summary>
    private static string BlockPrefix(IDecoderModel model, int block)
    {
        var names = model.BlockLinears(block).Select(l => l.Name).ToArray();
        var prefix = names[0];
        foreach (var n in names.Skip(1))
        {
            var i = 0;
            while (i < prefix.Length && i < n.Length && prefix[i] == n[i]) i++;
            prefix = prefix[..i];
        }
        var dot = prefix.LastIndexOf('.');
        if (dot < 0) throw new InvalidOperationException($"block {block}: its linears share no name prefix");
        return prefix[..(dot + 1)];
    }

    private static long BlockSourceBytes(IDecoderModel model, TensorStore store)
    {
        var prefix = BlockPrefix(model, 0);
        return store.Entries.Where(e => e.Name.StartsWith(prefix, StringComparison.Ordinal)).Sum(e => e.ByteLength);
    }

    public void Dispose()
    {
        bool abandon;
        lock (gate)
        {
            abandon = !completed;
            completed = true;
        }
        if (!abandon) return;
        try
        {
            Task.WhenAll(writes).Wait();
        }
        catch (AggregateException)
        {
            // The run is being abandoned; the failure that caused it is what the caller reports.
        }
        store.Dispose();
        ArtifactFiles.AbandonFolder(temp);
    }
}
