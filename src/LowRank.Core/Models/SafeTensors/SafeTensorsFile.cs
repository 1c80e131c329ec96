using System.IO.MemoryMappedFiles;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Models;

/// <summary>
/// One safetensors file, validated on open and memory-mapped on first load: a tensor's bytes are copied straight
/// from the page cache into a new tensor, so a 13 GB file is never read into one array and only the tensors asked
/// for are touched. Loads may run concurrently.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>Tensors larger than this are copied in slices, because TorchSharp exposes a tensor's bytes as a
    /// <see cref="Span{T}"/>, whose length is an <see cref="int"/>.</summary>
    internal long SliceBytes { get; set; } = 1L << 30;

    private readonly Dictionary<string, TensorEntry> _byName;
    private readonly Lock _mapLock = new();
    private MemoryMappedFile? _map;
    private MemoryMappedViewAccessor? _view;
    private byte* _base;
    private bool _disposed;

    private SafeTensorsFile(SafeTensorsHeader header)
    {
        Header = header;
        _byName = header.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>Reads and validates the header; the data is mapped lazily.</summary>
    public static SafeTensorsFile Open(string path) => new(SafeTensorsHeader.Read(System.IO.Path.GetFullPath(path)));

    public SafeTensorsHeader Header { get; }

    public string Path => Header.Path;

    /// <summary>The tensors in header order.</summary>
    public IReadOnlyList<TensorEntry> Tensors => Header.Tensors;

    public IReadOnlyDictionary<string, string> Metadata => Header.Metadata;

    public bool Contains(string name) => _byName.ContainsKey(name);

    public TensorEntry Info(string name) => _byName.TryGetValue(name, out var entry)
        ? entry
        : throw new LrkException(ErrorCodes.MissingTensor, $"{Path}: no tensor named '{name}'");

    /// <summary>
    /// A new CPU tensor holding <paramref name="name"/>'s data in its stored dtype, converted to <paramref name="dtype"/>
    /// and moved to <paramref name="device"/> when given. The caller owns (disposes) it.
    /// </summary>
    public Tensor Load(string name, ScalarType? dtype = null, Device? device = null)
    {
        var entry = Info(name);
        var stored = SafeTensorsDtypes.ToScalarType(entry.Dtype)
            ?? throw new LrkException(ErrorCodes.BadSafetensors, $"{Path}: tensor '{name}' has dtype {entry.Dtype}, which TorchSharp has no type for");
        var tensor = empty(entry.Shape, stored);
        try
        {
            CopyInto(entry, tensor);
            if ((dtype is { } wanted && wanted != stored) || (device is not null && device.type != DeviceType.CPU))
            {
                var converted = tensor.to(dtype ?? stored, device ?? CPU);
                tensor.Dispose();
                tensor = converted;
            }
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>Copies a tensor's raw little-endian bytes into <paramref name="destination"/> (exactly <see cref="TensorEntry.ByteLength"/> long).</summary>
    public void ReadBytes(string name, Span<byte> destination)
    {
        var entry = Info(name);
        if (destination.Length != entry.ByteLength)
            throw new ArgumentException($"destination holds {destination.Length} bytes, tensor '{name}' has {entry.ByteLength}", nameof(destination));
        new ReadOnlySpan<byte>(MappedBase() + entry.Offset, destination.Length).CopyTo(destination);
    }

    private void CopyInto(TensorEntry entry, Tensor tensor)
    {
        if (entry.ByteLength == 0) return;
        if (tensor.ElementSize * tensor.NumberOfElements != entry.ByteLength)
            throw new InvalidOperationException($"tensor '{entry.Name}': {entry.ByteLength} bytes on disk, {tensor.ElementSize * tensor.NumberOfElements} in memory");
        var source = MappedBase() + entry.Offset;
        if (entry.ByteLength <= SliceBytes)
        {
            new ReadOnlySpan<byte>(source, (int)entry.ByteLength).CopyTo(tensor.bytes);
            return;
        }
        using var flat = tensor.view(-1);
        var sliceElements = SliceBytes / tensor.ElementSize;
        for (long start = 0; start < tensor.NumberOfElements; start += sliceElements)
        {
            using var slice = flat.narrow(0, start, Math.Min(sliceElements, tensor.NumberOfElements - start));
            var target = slice.bytes;
            new ReadOnlySpan<byte>(source + start * tensor.ElementSize, target.Length).CopyTo(target);
        }
    }

    private byte* MappedBase()
    {
        lock (_mapLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_base is not null) return _base;
            try
            {
                _map = MemoryMappedFile.CreateFromFile(Path, FileMode.Open, mapName: null, capacity: 0, MemoryMappedFileAccess.Read);
                _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
                byte* pointer = null;
                _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
                _base = pointer + _view.PointerOffset;
                if (_view.Capacity < Header.FileLength)
                {
                    var length = _view.Capacity;
                    ReleaseMap();
                    throw new LrkException(ErrorCodes.BadSafetensors, $"{Path}: the file shrank to {length} bytes after it was opened ({Header.FileLength})");
                }
                return _base;
            }
            catch (IOException e)
            {
                ReleaseMap();
                throw new LrkException(ErrorCodes.BadSafetensors, $"{Path}: cannot be memory-mapped ({e.Message})");
            }
            catch (UnauthorizedAccessException e)
            {
                ReleaseMap();
                throw new LrkException(ErrorCodes.BadSafetensors, $"{Path}: cannot be memory-mapped ({e.Message})");
            }
        }
    }

    private void ReleaseMap()
    {
        if (_base is not null) _view!.SafeMemoryMappedViewHandle.ReleasePointer();
        _base = null;
        _view?.Dispose();
        _view = null;
        _map?.Dispose();
        _map = null;
    }

    public void Dispose()
    {
        lock (_mapLock)
        {
            if (_disposed) return;
            _disposed = true;
            ReleaseMap();
        }
    }
}
