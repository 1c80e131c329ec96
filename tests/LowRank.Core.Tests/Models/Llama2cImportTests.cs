using System.Buffers.Binary;
using System.Text.Json.Nodes;
using LowRank.Models;
using LowRank.Models.Llama2c;
using LowRank.Tests.TestSupport;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>The llama2.c import: the folder it writes, its atomicity and its refusals.</summary>
public sealed class Llama2cImportTests
{
    public Llama2cImportTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Import_writes_a_standard_hf_folder()
    {
        using var temp = new TempFolder();
        var folder = Path.Combine(temp.Path, "out");
        var result = Llama2cImporter.Import(Stories260K.Checkpoint, Stories260K.Tokenizer, folder);
        Assert.Equal(["config.json", "model.safetensors", "tokenizer.bin", "tokenizer_config.json"], result.Files);
        Assert.Equal(260_032, result.Parameters);
        Assert.Equal([folder], Directory.EnumerateFileSystemEntries(temp.Path)); // no temp folder left

        var config = ModelConfigReader.Read(folder);
        Assert.Equal((ModelFamily.Llama, 64, 172, 5, 8, 4, 512, 512, true), (config.Family, config.HiddenSize, config.IntermediateSize,
            config.NumLayers, config.NumHeads, config.NumKvHeads, config.VocabSize, config.MaxPositions, config.TieWordEmbeddings));
        using var store = TensorStore.Open(folder);
        Assert.Contains("model.layers.4.self_attn.q_proj.weight", store.Names);
        Assert.DoesNotContain("lm_head.weight", store.Names); // tied classifier
        Assert.Equal([32L, 64L], store.Info("model.layers.0.self_attn.k_proj.weight").Shape);

        // q rows are permuted per head from llama2.c's adjacent pairs to HF's halves: HF row i ← llama2.c row 2i,
        // HF row i + hs/2 ← llama2.c row 2i + 1 (hs = 8).
        using var scope = NewDisposeScope();
        var hf = store.Load("model.layers.0.self_attn.q_proj.weight");
        var raw = RawLlama2cTensor(Stories260K.Checkpoint, offsetFloats: 512 * 64 + 5 * 64, rows: 64, columns: 64);
        for (var head = 0; head < 8; head++)
        {
            for (var i = 0; i < 4; i++)
            {
                Assert.Equal(0f, (hf[head * 8 + i] - raw[head * 8 + 2 * i]).abs().max().item<float>());
                Assert.Equal(0f, (hf[head * 8 + i + 4] - raw[head * 8 + 2 * i + 1]).abs().max().item<float>());
            }
        }
    }

    private static Tensor RawLlama2cTensor(string path, long offsetFloats, int rows, int columns)
    {
        var bytes = File.ReadAllBytes(path);
        var values = new float[rows * columns];
        for (var i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(28 + (int)(offsetFloats + i) * 4));
        return tensor(values, [rows, columns]);
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Import_refuses_a_non_empty_out_unless_forced()
    {
        using var temp = new TempFolder();
        var folder = Path.Combine(temp.Path, "out");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "keep.txt"), "user data");
        var refused = Assert.Throws<LrkException>(() => Llama2cImporter.Import(Stories260K.Checkpoint, Stories260K.Tokenizer, folder));
        Assert.Equal(ErrorCodes.OutputExists, refused.Code);
        Assert.True(File.Exists(Path.Combine(folder, "keep.txt")));

        Llama2cImporter.Import(Stories260K.Checkpoint, Stories260K.Tokenizer, folder, force: true);
        Assert.False(File.Exists(Path.Combine(folder, "keep.txt")));
        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors")));
        Assert.Single(Directory.EnumerateFileSystemEntries(temp.Path));
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Malformed_checkpoints_are_rejected_and_leave_nothing_behind()
    {
        using var temp = new TempFolder();
        var original = File.ReadAllBytes(Stories260K.Checkpoint);
        var cases = new (string Name, byte[] Bytes, string Message)[]
        {
            ("truncated", original[..^100], "truncated"),
            ("extra", [.. original, 0, 0, 0, 0], "legacy v0"),
            ("header-only", original[..20], "28-byte header"),
            ("zero-dim", WithHeader(original, 0, 0), "dim = 0"),
            ("heads-not-divisible", WithHeader(original, 3, 7), "does not split into 7 heads"),
            ("kv-heads", WithHeader(original, 4, 3), "n_kv_heads"),
        };
        foreach (var (name, bytes, message) in cases)
        {
            var path = temp.File(name + ".bin");
            File.WriteAllBytes(path, bytes);
            var error = Assert.Throws<LrkException>(() => Llama2cImporter.Import(path, Stories260K.Tokenizer, temp.File(name + "-out")));
            Assert.Equal(ErrorCodes.BadCheckpoint, error.Code);
            Assert.True(error.Message.Contains(message, StringComparison.Ordinal), $"{name}: {error.Message}");
            Assert.False(Directory.Exists(temp.File(name + "-out")));
        }
        // A tokenizer of another vocabulary size does not belong to the model.
        var tokenizer = File.ReadAllBytes(Stories260K.Tokenizer);
        var shortTokenizer = temp.File("short.bin");
        File.WriteAllBytes(shortTokenizer, tokenizer[..FindTokenEnd(tokenizer, 300)]);
        var mismatch = Assert.Throws<LrkException>(() => Llama2cImporter.Import(Stories260K.Checkpoint, shortTokenizer, temp.File("mismatch-out")));
        Assert.Equal(ErrorCodes.BadTokenizer, mismatch.Code);
        Assert.Empty(Directory.EnumerateDirectories(temp.Path));
    }

    private static byte[] WithHeader(byte[] original, int field, int value)
    {
        var copy = (byte[])original.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(copy.AsSpan(4 * field), value);
        return copy;
    }

    /// <summary>The byte offset just past token <paramref name="count"/> - 1 of a tokenizer.bin.</summary>
    private static int FindTokenEnd(byte[] tokenizer, int count)
    {
        var offset = 4;
        for (var i = 0; i < count; i++) offset += 8 + BinaryPrimitives.ReadInt32LittleEndian(tokenizer.AsSpan(offset + 4));
        return offset;
    }

    [RequiresPathFact(Stories260K.RelativePath)]
    public void Config_json_written_by_the_import_reads_back_as_the_checkpoint_config()
    {
        using var temp = new TempFolder();
        var folder = Path.Combine(temp.Path, "out");
        Llama2cImporter.Import(Stories260K.Checkpoint, Stories260K.Tokenizer, folder);
        var fromFile = ModelConfigReader.Read(folder);
        var direct = Llama2cCheckpoint.Open(Stories260K.Checkpoint).ToModelConfig();
        Assert.Equal(direct with { Raw = null, EosTokenIds = [] }, fromFile with { Raw = null, EosTokenIds = [] });
        Assert.Equal("LlamaForCausalLM", JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!["architectures"]![0]!.GetValue<string>());
    }
}
