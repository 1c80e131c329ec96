using System.Text.Json.Nodes;
using LowRank.Models;
using LowRank.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>Writer → reader round trips through real files: bytes, dtypes, shapes, metadata and sharding.</summary>
public sealed class SafeTensorsRoundTripTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public SafeTensorsRoundTripTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    public void Dispose() => _temp.Dispose();

    private static Tensor Random(long[] shape, ScalarType dtype, int seed) =>
        randn(shape, float32, generator: new Generator((ulong)seed)).to(dtype);

    private static byte[] Bytes(Tensor t) => t.contiguous().bytes.ToArray();

    private static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Theory]
    [InlineData(ScalarType.Float32, "F32")]
    [InlineData(ScalarType.Float16, "F16")]
    [InlineData(ScalarType.BFloat16, "BF16")]
    [InlineData(ScalarType.Float64, "F64")]
    public void Float_tensors_round_trip_bit_exactly(ScalarType dtype, string name)
    {
        using var scope = NewDisposeScope();
        var a = Random([7, 13], dtype, 1);
        // special values must survive too: infinities, NaN, signed zero, subnormals of the type
        var b = tensor(new[] { float.PositiveInfinity, float.NegativeInfinity, float.NaN, -0.0f, 1e-40f, 65504f }).to(dtype);
        var scalar = tensor(3.25f).to(dtype);
        var path = _temp.File("a.safetensors");
        SafeTensorsWriter.Write(path, [new("a", a), new("b", b), new("scalar", scalar)]);

        using var store = TensorStore.Open(path);
        Assert.Equal(["a", "b", "scalar"], store.Names);
        Assert.Equal(name, store.Info("a").Dtype);
        Assert.Equal([7L, 13L], store.Info("a").Shape);
        Assert.Empty(store.Info("scalar").Shape);
        foreach (var (key, original) in new[] { ("a", a), ("b", b), ("scalar", scalar) })
        {
            var loaded = store.Load(key);
            Assert.Equal(dtype, loaded.dtype);
            Assert.Equal(original.shape, loaded.shape);
            Assert.Equal(Bytes(original), Bytes(loaded));
        }
    }

    [Fact]
    public void Integer_and_bool_tensors_round_trip()
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["i64"] = tensor(new long[] { long.MinValue, -1, 0, long.MaxValue }),
            ["i32"] = tensor(new[] { int.MinValue, 7, int.MaxValue }).reshape(3, 1),
            ["i16"] = tensor(new short[] { -300, 300 }),
            ["i8"] = tensor(new sbyte[] { -128, 127 }),
            ["u8"] = tensor(new byte[] { 0, 255, 17 }),
            ["bool"] = tensor(new[] { true, false, true }),
        };
        var path = _temp.File("ints.safetensors");
        SafeTensorsWriter.Write(path, tensors);
        using var store = TensorStore.Open(path);
        Assert.Equal(["I64", "I32", "I16", "I8", "U8", "BOOL"], store.Names.Select(n => store.Info(n).Dtype));
        foreach (var (key, original) in tensors)
        {
            var loaded = store.Load(key);
            Assert.Equal(original.dtype, loaded.dtype);
            Assert.True(Same(original, loaded), key);
        }
    }

    [Fact]
    public void Load_converts_dtype_on_request()
    {
        using var scope = NewDisposeScope();
        var a = Random([4, 5], ScalarType.BFloat16, 2);
        var path = _temp.File("bf16.safetensors");
        SafeTensorsWriter.Write(path, [new("a", a)]);
        using var store = TensorStore.Open(path);
        var loaded = store.Load("a", float32);
        Assert.Equal(ScalarType.Float32, loaded.dtype);
        // bf16 → fp32 is exact, so this equality checks the bytes were read from the right place
        Assert.True(Same(a.to(float32), loaded));
    }

    [Fact]
    public void Header_is_padded_to_8_bytes_and_metadata_is_kept()
    {
        using var scope = NewDisposeScope();
        var path = _temp.File("meta.safetensors");
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\"" };
        SafeTensorsWriter.Write(path, [new("x", ones(3))], metadata);
        var bytes = File.ReadAllBytes(path);
        var headerLength = (long)BitConverter.ToUInt64(bytes, 0);
        Assert.Equal(0, headerLength % 8);
        Assert.Equal(8 + headerLength + 12, bytes.Length);
        var header = JsonNode.Parse(System.Text.Encoding.UTF8.GetString(bytes, 8, (int)headerLength))!.AsObject();
        Assert.Equal("pt", (string?)header["__metadata__"]!["format"]);
        Assert.Equal("[0,12]", header["x"]!["data_offsets"]!.ToJsonString());

        using var store = TensorStore.Open(path);
        Assert.Equal(metadata, store.Metadata);
        Assert.DoesNotContain(store.Names, n => n == "__metadata__");
    }

    [Fact]
    public void Empty_and_zero_sized_tensors_round_trip()
    {
        using var scope = NewDisposeScope();
        var path = _temp.File("zero.safetensors");
        SafeTensorsWriter.Write(path, [new("empty", zeros(0, 4)), new("after", arange(3, dtype: float32))]);
        using var store = TensorStore.Open(path);
        Assert.Equal([0L, 4L], store.Info("empty").Shape);
        Assert.Equal(0, store.Info("empty").ByteLength);
        Assert.Equal([0L, 4L], store.Load("empty").shape);
        Assert.Equal([0f, 1f, 2f], store.Load("after").data<float>().ToArray());

        var none = _temp.File("none.safetensors");
        SafeTensorsWriter.Write(none, []);
        using var emptyStore = TensorStore.Open(none);
        Assert.Empty(emptyStore.Names);
    }

    [Fact]
    public void Non_contiguous_tensors_are_written_in_logical_order()
    {
        using var scope = NewDisposeScope();
        var transposed = arange(6, dtype: float32).reshape(2, 3).T;
        var path = _temp.File("t.safetensors");
        SafeTensorsWriter.Write(path, [new("t", transposed)]);
        using var store = TensorStore.Open(path);
        Assert.Equal([0f, 3f, 1f, 4f, 2f, 5f], store.Load("t").data<float>().ToArray());
    }

    [Fact]
    public void Large_tensors_are_copied_in_slices_bit_exactly()
    {
        // The reader and writer slice tensors above 1 GiB / 256 MiB; small slice sizes exercise that path here,
        // with slice boundaries that do not divide the tensor.
        using var scope = NewDisposeScope();
        var a = Random([1001, 3], ScalarType.BFloat16, 5);
        var b = Random([77], ScalarType.Float32, 6);
        var path = _temp.File("sliced.safetensors");
        SafeTensorsWriter.Write(path, [new("a", a), new("b", b)], null, sliceBytes: 64);
        using (var whole = TensorStore.Open(path))
        {
            Assert.Equal(Bytes(a), Bytes(whole.Load("a")));
            Assert.Equal(Bytes(b), Bytes(whole.Load("b")));
        }
        using var file = SafeTensorsFile.Open(path);
        file.SliceBytes = 40;
        Assert.Equal(Bytes(a), Bytes(file.Load("a")));
        Assert.Equal(Bytes(b), Bytes(file.Load("b")));
        var raw = new byte[file.Info("b").ByteLength];
        file.ReadBytes("b", raw);
        Assert.Equal(Bytes(b), raw);
    }

    [Fact]
    public void Concurrent_loads_share_one_mapping_and_outlive_the_store()
    {
        using var scope = NewDisposeScope();
        var tensors = Enumerable.Range(0, 16).Select(i => new KeyValuePair<string, Tensor>($"t{i}", Random([33, 17], ScalarType.Float32, 100 + i))).ToList();
        var path = _temp.File("many.safetensors");
        SafeTensorsWriter.Write(path, tensors);
        var loaded = new Tensor[tensors.Count];
        using (var store = TensorStore.Open(path))
        {
            Parallel.For(0, tensors.Count, i => loaded[i] = store.Load($"t{i}"));
        }
        File.Delete(path); // the loaded tensors are copies, independent of the mapping and the file
        for (var i = 0; i < tensors.Count; i++)
        {
            Assert.Equal(Bytes(tensors[i].Value), Bytes(loaded[i]));
            loaded[i].Dispose(); // created on pool threads, outside this thread's dispose scope
        }
    }

    [Fact]
    public void WriteModel_writes_one_file_when_it_fits()
    {
        var specs = Specs(4, [64, 32]);
        var written = SafeTensorsWriter.WriteModel(_temp.Path, specs);
        Assert.Equal([_temp.File("model.safetensors")], written);
        using var store = TensorStore.Open(_temp.Path);
        Assert.False(store.IsSharded);
        Assert.Equal("pt", store.Metadata["format"]);
        CheckValues(store, specs);
    }

    [Fact]
    public void WriteModel_shards_produces_each_tensor_once_and_reads_back()
    {
        var produced = new Dictionary<string, int>();
        var specs = Specs(5, [64, 32], produced); // 8 KiB each
        var written = SafeTensorsWriter.WriteModel(_temp.Path, specs, new Dictionary<string, string> { ["k"] = "v" }, maxShardBytes: 20_000);
        Assert.Equal(
            ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json"],
            written.Select(Path.GetFileName));
        Assert.All(produced.Values, count => Assert.Equal(1, count));

        var index = JsonNode.Parse(File.ReadAllText(_temp.File("model.safetensors.index.json")))!;
        Assert.Equal(5 * 64 * 32 * 4, (long)index["metadata"]!["total_size"]!);
        Assert.Equal("model-00003-of-00003.safetensors", (string?)index["weight_map"]!["w4"]);

        using var store = TensorStore.Open(_temp.Path);
        Assert.True(store.IsSharded);
        Assert.Equal(3, store.Files.Count);
        Assert.Equal("v", store.Metadata["k"]);
        Assert.Equal(5 * 64 * 32 * 4, store.TotalBytes);
        CheckValues(store, specs);
        Assert.EndsWith("model-00002-of-00003.safetensors", store.Info("w2").File);
    }

    [Fact]
    public void WriteModel_replaces_an_earlier_layout()
    {
        SafeTensorsWriter.WriteModel(_temp.Path, Specs(5, [64, 32]), maxShardBytes: 20_000);
        var specs = Specs(2, [8, 8]);
        SafeTensorsWriter.WriteModel(_temp.Path, specs);
        Assert.Equal(["model.safetensors"], Directory.GetFiles(_temp.Path).Select(Path.GetFileName));
        using var store = TensorStore.Open(_temp.Path);
        Assert.Equal(["w0", "w1"], store.Names);
        CheckValues(store, specs);
    }

    [Fact]
    public void WriteModel_converts_produced_tensors_to_the_declared_dtype()
    {
        using var scope = NewDisposeScope();
        var source = Random([3, 3], ScalarType.Float32, 9);
        SafeTensorsWriter.WriteModel(_temp.Path, [new TensorSpec("w", ScalarType.BFloat16, [3, 3], () => source)]);
        using var store = TensorStore.Open(_temp.Path);
        Assert.Equal("BF16", store.Info("w").Dtype);
        Assert.Equal(Bytes(source.to(bfloat16)), Bytes(store.Load("w")));
        Assert.False(source.IsInvalid); // the caller's tensor was not disposed by the writer
    }

    [Fact]
    public void Failed_write_leaves_nothing_behind()
    {
        var path = _temp.File("model.safetensors");
        var specs = new[]
        {
            new TensorSpec("ok", ScalarType.Float32, [2], () => ones(2)),
            new TensorSpec("bad", ScalarType.Float32, [3], () => ones(4)),
        };
        Assert.Throws<InvalidOperationException>(() => SafeTensorsWriter.WriteModel(_temp.Path, specs));
        Assert.Empty(Directory.GetFiles(_temp.Path));
        Assert.False(File.Exists(path));
    }

    private static List<TensorSpec> Specs(int count, long[] shape, Dictionary<string, int>? produced = null) =>
        Enumerable.Range(0, count).Select(i => new TensorSpec($"w{i}", ScalarType.Float32, shape, () =>
        {
            if (produced is not null) produced[$"w{i}"] = produced.GetValueOrDefault($"w{i}") + 1;
            return full(shape, (float)i, float32) + arange(shape[^1], dtype: float32);
        })).ToList();

    private static void CheckValues(TensorStore store, List<TensorSpec> specs)
    {
        using var scope = NewDisposeScope();
        Assert.Equal(specs.Select(s => s.Name).Order(), store.Names.Order());
        foreach (var spec in specs)
            Assert.True(Same(spec.Produce(), store.Load(spec.Name)), spec.Name);
    }
}
