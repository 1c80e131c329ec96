using System.Text.Json;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// The weights of a model folder: <c>model.safetensors</c>, or the shards a <c>model.safetensors.index.json</c>
/// lists, or a single safetensors file given directly. Every file's header is validated on open; data is
/// memory-mapped and read only for the tensors loaded. Pickled checkpoints (<c>pytorch_model.bin</c>, <c>*.pt</c>)
/// are never read: unpickling can run arbitrary code.
/// </summary>
public sealed class TensorStore : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private static readonly string[] PickleExtensions = [".bin", ".pt", ".pth", ".ckpt", ".pkl"];

    private readonly List<SafeTensorsFile> _files;
    private readonly Dictionary<string, (SafeTensorsFile File, TensorEntry Entry)> _tensors;
    private readonly List<string> _names;

    private TensorStore(string folder, string? indexPath, List<SafeTensorsFile> files, List<(SafeTensorsFile, TensorEntry)> tensors, Dictionary<string, string> metadata)
    {
        Folder = folder;
        IndexPath = indexPath;
        _files = files;
        var fileOrder = files.Select((f, i) => (f, i)).ToDictionary(p => p.f, p => p.i);
        _names = tensors.OrderBy(t => fileOrder[t.Item1]).ThenBy(t => t.Item2.Offset).Select(t => t.Item2.Name).ToList();
        _tensors = tensors.ToDictionary(t => t.Item2.Name, t => t, StringComparer.Ordinal);
        Metadata = metadata;
    }

    /// <summary>
    /// Opens a model folder (<c>model.safetensors</c>, else <c>model.safetensors.index.json</c>, else its only
    /// <c>*.safetensors</c> file), a <c>*.safetensors</c> file, or a <c>*.safetensors.index.json</c> file.
    /// </summary>
    public static TensorStore Open(string folderOrFile)
    {
        var full = Path.GetFullPath(folderOrFile);
        if (Directory.Exists(full)) return OpenFolder(full);
        if (!File.Exists(full))
            throw new LrkException(ErrorCodes.ModelNotFound, $"{folderOrFile}: no such model folder or safetensors file");
        var folder = Path.GetDirectoryName(full)!;
        if (full.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)) return OpenSharded(folder, full);
        if (PickleExtensions.Any(e => full.EndsWith(e, StringComparison.OrdinalIgnoreCase))) throw PickleRefused(full);
        return OpenSingle(folder, full);
    }

    /// <summary>The folder the weights live in.</summary>
    public string Folder { get; }

    /// <summary>The shard index, when the weights are sharded.</summary>
    public string? IndexPath { get; }

    public bool IsSharded => IndexPath is not null;

    /// <summary>Tensor names in storage order: file by file (see <see cref="Files"/>), by position within each file.</summary>
    public IReadOnlyCollection<string> Names => _names;

    /// <summary>The safetensors files, full paths; shards sorted by file name (model-00001-of-… first).</summary>
    public IReadOnlyList<string> Files => _files.Select(f => f.Path).ToList();

    /// <summary>The <c>__metadata__</c> of the file (sharded: the union over shards, first shard wins on conflicts).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Sum of every tensor's bytes.</summary>
    public long TotalBytes => _tensors.Values.Sum(t => t.Entry.ByteLength);

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorEntry Info(string name) => Find(name).Entry;

    /// <summary>Every tensor's entry, in <see cref="Names"/> order.</summary>
    public IEnumerable<TensorEntry> Entries => _names.Select(n => _tensors[n].Entry);

    /// <summary>A new tensor with <paramref name="name"/>'s data (converted to <paramref name="dtype"/>, on
    /// <paramref name="device"/> when given; else stored dtype, CPU). The caller owns it.</summary>
    public Tensor Load(string name, ScalarType? dtype = null, Device? device = null) => Find(name).File.Load(name, dtype, device);

    /// <summary>The raw stored bytes of a tensor (little-endian, <see cref="TensorEntry.ByteLength"/> long).</summary>
    public void ReadBytes(string name, Span<byte> destination) => Find(name).File.ReadBytes(name, destination);

    public void Dispose()
    {
        foreach (var file in _files) file.Dispose();
    }

    private (SafeTensorsFile File, TensorEntry Entry) Find(string name) => _tensors.TryGetValue(name, out var found)
        ? found
        : throw new LrkException(ErrorCodes.MissingTensor, $"{Folder}: the model has no tensor named '{name}'");

    private static TensorStore OpenFolder(string folder)
    {
        var single = Path.Combine(folder, SingleFileName);
        if (File.Exists(single)) return OpenSingle(folder, single);
        var index = Path.Combine(folder, IndexFileName);
        if (File.Exists(index)) return OpenSharded(folder, index);
        var safetensors = Directory.GetFiles(folder, "*.safetensors");
        if (safetensors.Length == 1) return OpenSingle(folder, safetensors[0]);
        var indexes = Directory.GetFiles(folder, "*.safetensors.index.json");
        if (indexes.Length == 1) return OpenSharded(folder, indexes[0]);
        if (safetensors.Length > 1)
            throw new LrkException(ErrorCodes.BadShardIndex,
                $"{folder}: holds {safetensors.Length} .safetensors files but no {IndexFileName} saying which tensors each holds");
        var pickle = Directory.GetFiles(folder).FirstOrDefault(f => PickleExtensions.Any(e => f.EndsWith(e, StringComparison.OrdinalIgnoreCase)));
        if (pickle is not null) throw PickleRefused(pickle);
        throw new LrkException(ErrorCodes.ModelNotFound, $"{folder}: no model weights ({SingleFileName} or {IndexFileName})");
    }

    private static LrkException PickleRefused(string path) => new(ErrorCodes.ModelNotFound,
        $"{path}: pickled PyTorch weights are never loaded (unpickling can run arbitrary code); safetensors is required: " +
        "convert them once with transformers (save_pretrained(..., safe_serialization=True)) or use the model's safetensors revision");

    private static TensorStore OpenSingle(string folder, string path)
    {
        var file = SafeTensorsFile.Open(path);
        return new TensorStore(folder, null, [file], file.Tensors.Select(t => (file, t)).ToList(), new Dictionary<string, string>(file.Metadata));
    }

    private static TensorStore OpenSharded(string folder, string indexPath)
    {
        var weightMap = ReadIndex(folder, indexPath);
        var files = new List<SafeTensorsFile>();
        try
        {
            var byShard = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (var shard in weightMap.Select(e => e.Shard).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                var shardPath = Path.Combine(folder, shard);
                if (!File.Exists(shardPath))
                    throw new LrkException(ErrorCodes.BadShardIndex, $"{indexPath}: shard '{shard}' is listed but missing from {folder}");
                var file = SafeTensorsFile.Open(shardPath);
                files.Add(file);
                byShard.Add(shard, file);
            }
            var tensors = new List<(SafeTensorsFile, TensorEntry)>(weightMap.Count);
            foreach (var (name, shard) in weightMap)
            {
                var file = byShard[shard];
                if (!file.Contains(name))
                    throw new LrkException(ErrorCodes.BadShardIndex, $"{indexPath}: tensor '{name}' is listed in shard '{shard}', which does not hold it");
                tensors.Add((file, file.Info(name)));
            }
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var file in files)
                foreach (var (key, value) in file.Metadata) metadata.TryAdd(key, value);
            return new TensorStore(folder, indexPath, files, tensors, metadata);
        }
        catch
        {
            foreach (var file in files) file.Dispose();
            throw;
        }
    }

    /// <summary>Parses <c>weight_map</c> (tensor → shard file name). Shard names must stay inside the model folder.</summary>
    private static List<(string Name, string Shard)> ReadIndex(string folder, string indexPath)
    {
        IO.RegularFile.Require(indexPath, ErrorCodes.BadShardIndex, "a shard index");
        JsonDocument document;
        try
        {
            var bytes = File.ReadAllBytes(indexPath);
            if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw BadIndex(indexPath, "is not valid JSON (it is not UTF-8 text)");
            document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw BadIndex(indexPath, $"is not valid JSON ({e.Message})");
        }
        catch (IOException e)
        {
            throw BadIndex(indexPath, $"cannot be read ({e.Message})");
        }
        catch (UnauthorizedAccessException e)
        {
            throw BadIndex(indexPath, $"cannot be read ({e.Message})");
        }
        using (document)
        {
            IO.JsonTextCheck.Check(document.RootElement, indexPath, ErrorCodes.BadShardIndex);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw BadIndex(indexPath, "must be a JSON object with a 'weight_map'");
            if (!document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw BadIndex(indexPath, "'weight_map' must be an object mapping tensor names to shard files" + (map.ValueKind == JsonValueKind.Undefined ? " but is missing" : ""));
            var entries = new List<(string, string)>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var folderPrefix = Path.TrimEndingDirectorySeparator(folder) + Path.DirectorySeparatorChar;
            foreach (var property in map.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw BadIndex(indexPath, $"tensor '{property.Name}' is listed twice in 'weight_map'");
                if (property.Value.ValueKind != JsonValueKind.String || property.Value.GetString() is not { Length: > 0 } shard)
                    throw BadIndex(indexPath, $"'weight_map' entry of '{property.Name}' must be a shard file name");
                if (Path.IsPathRooted(shard) || shard.Contains('\\', StringComparison.Ordinal) || shard.Contains('\0', StringComparison.Ordinal))
                    throw BadIndex(indexPath, $"'weight_map' entry of '{property.Name}' ('{shard}') must be a file name relative to the model folder");
                var resolved = Path.GetFullPath(Path.Combine(folder, shard));
                if (!resolved.StartsWith(folderPrefix, StringComparison.Ordinal))
                    throw BadIndex(indexPath, $"'weight_map' entry of '{property.Name}' ('{shard}') points outside the model folder");
                entries.Add((property.Name, Path.GetRelativePath(folder, resolved)));
            }
            if (entries.Count == 0) throw BadIndex(indexPath, "'weight_map' lists no tensors");
            return entries;
        }
    }

    private static LrkException BadIndex(string indexPath, string message) => new(ErrorCodes.BadShardIndex, $"{indexPath}: {message}");
}
