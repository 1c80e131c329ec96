using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using LowRank.Compression;
using LowRank.Models;
using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace LowRank.Bench;

/// <summary>
/// A synthetic sharded safetensors checkpoint, one shard per decoder block, that is larger than the disk it lives on:
/// every shard exists from the start with its header and full length, but its data section is a hole until the loader
/// first reads one of the block's tensors; then the block is generated (the same seeded tensors
/// <see cref="ScaleBenchmark.Synthesize"/> writes) and written in place, and the least recently read block beyond
/// <see cref="Capacity"/> is punched out again (<c>fallocate(PUNCH_HOLE)</c>). The loader reads real safetensors through
/// the file system and the page cache like any checkpoint; only this class knows the bytes were staged.
/// The 70B shape needs it: 140 GB of fp16 against the GPU machine's 64 GiB disk.
/// </summary>
public sealed class StagedCheckpoint : IDisposable
{
    private const int FallocKeepSize = 1;
    private const int FallocPunchHole = 2;
    private const string OtherShard = "model-other.safetensors";

    private readonly object gate = new();
    private readonly Dictionary<int, List<TensorSpec>> specs;
    private readonly Dictionary<string, int> groupOf;
    private readonly Dictionary<string, SafeFileHandle> handles = new(StringComparer.Ordinal);
    private readonly LinkedList<int> staged = new();
    private readonly TensorStore store;
    private long stagedBytes;

    private StagedCheckpoint(string folder, Dictionary<int, List<TensorSpec>> specs, int capacity)
    {
        Folder = folder;
        this.specs = specs;
        groupOf = specs.SelectMany(p => p.Value.Select(spec => (spec.Name, p.Key))).ToDictionary(p => p.Name, p => p.Key, StringComparer.Ordinal);
        Capacity = capacity;
        store = TensorStore.Open(folder);
        foreach (var file in store.Files) handles[file] = File.OpenHandle(file, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
    }

    public string Folder { get; }

    /// <summary>Blocks whose data are on disk at most at once (the non-block tensors are always there).</summary>
    public int Capacity { get; }

    /// <summary>Seconds spent generating and writing blocks (on whichever thread asked for them).</summary>
    public double StageSeconds { get; private set; }

    public int BlocksStaged { get; private set; }

    /// <summary>The largest number of data bytes that were on disk at one time.</summary>
    public long PeakStagedBytes { get; private set; }

    public long CheckpointBytes => specs.Values.SelectMany(s => s).Sum(SafeTensorsWriter.ByteLengthOf);

    /// <summary>Writes the placeholders (config.json, shards with headers, index) into <paramref name="folder"/>, replacing it.</summary>
    public static StagedCheckpoint Create(string folder, IReadOnlyList<TensorSpec> tensors, JsonObject config, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 2);
        var bySpec = new Dictionary<int, List<TensorSpec>>();
        foreach (var spec in tensors)
        {
            var block = GroupOf(spec);
            if (!bySpec.TryGetValue(block, out var list)) bySpec[block] = list = [];
            list.Add(spec);
        }
        var temp = folder + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        File.WriteAllText(Path.Combine(temp, "config.json"), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (block, list) in bySpec)
        {
            var shard = ShardName(block);
            SafeTensorsWriter.WritePlaceholder(Path.Combine(temp, shard), list);
            foreach (var spec in list) weightMap[spec.Name] = shard;
        }
        SafeTensorsWriter.WriteIndex(temp, weightMap, tensors.Sum(SafeTensorsWriter.ByteLengthOf));
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        Directory.Move(temp, folder);
        var checkpoint = new StagedCheckpoint(folder, bySpec, capacity);
        try
        {
            checkpoint.Stage(-1);
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>The checkpoint as a weight source that stages each block before its first read.</summary>
    public WeightSource Source() => new(store.Names, name =>
    {
        EnsureStaged(groupOf[name]);
        return store.Load(name);
    }, name => store.Info(name).Shape);

    private void EnsureStaged(int block)
    {
        lock (gate)
        {
            if (block < 0) return;
            var node = staged.Find(block);
            if (node is not null)
            {
                staged.Remove(node);
                staged.AddLast(node);
                return;
            }
            while (staged.Count >= Capacity)
            {
                var oldest = staged.First!.Value;
                staged.RemoveFirst();
                Punch(oldest);
            }
            Stage(block);
            staged.AddLast(block);
        }
    }

    private void Stage(int block)
    {
        var clock = Stopwatch.StartNew();
        foreach (var spec in specs[block])
        {
            using var scope = NewDisposeScope();
            var entry = store.Info(spec.Name);
            var tensor = spec.Produce().to(spec.Dtype).cpu().contiguous();
            if (tensor.NumberOfElements * tensor.ElementSize != entry.ByteLength)
                throw new InvalidOperationException($"{spec.Name}: produced {tensor.NumberOfElements * tensor.ElementSize} bytes for a {entry.ByteLength}-byte slot");
            var flat = tensor.view(-1);
            const long slice = 1L << 28;
            var perSlice = slice / tensor.ElementSize;
            for (long start = 0; start < tensor.NumberOfElements; start += perSlice)
            {
                using var part = flat.narrow(0, start, Math.Min(perSlice, tensor.NumberOfElements - start));
                RandomAccess.Write(handles[entry.File], part.bytes, entry.Offset + start * tensor.ElementSize);
            }
            stagedBytes += entry.ByteLength;
        }
        PeakStagedBytes = Math.Max(PeakStagedBytes, stagedBytes);
        if (block >= 0) BlocksStaged++;
        StageSeconds += clock.Elapsed.TotalSeconds;
    }

    private void Punch(int block)
    {
        foreach (var spec in specs[block])
        {
            var entry = store.Info(spec.Name);
            var handle = handles[entry.File];
            if (fallocate((int)handle.DangerousGetHandle(), FallocKeepSize | FallocPunchHole, entry.Offset, entry.ByteLength) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new LrkException(ErrorCodes.Internal,
                    $"{entry.File}: punching out block {block} failed (errno {errno}); this file system cannot hold a staged checkpoint");
            }
            stagedBytes -= entry.ByteLength;
        }
    }

    /// <summary>The block a tensor is staged with; -1 (always on disk) for non-block tensors and for the 1-D norm weights,
    /// which the model reads at construction.</summary>
    private static int GroupOf(TensorSpec spec) => spec.Shape.Length == 1 ? -1 : BlockOf(spec.Name);

    private static int BlockOf(string name)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return -1;
        var end = name.IndexOf('.', prefix.Length);
        return int.Parse(name.AsSpan(prefix.Length, end - prefix.Length), CultureInfo.InvariantCulture);
    }

    private static string ShardName(int block) =>
        block < 0 ? OtherShard : string.Create(CultureInfo.InvariantCulture, $"model-layer-{block:D5}.safetensors");

    public void Dispose()
    {
        store.Dispose();
        foreach (var handle in handles.Values) handle.Dispose();
        handles.Clear();
    }

    [DllImport("libc.so.6", SetLastError = true)]
    private static extern int fallocate(int fd, int mode, long offset, long length);
}
