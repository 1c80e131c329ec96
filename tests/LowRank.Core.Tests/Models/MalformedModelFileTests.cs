using System.Buffers.Binary;
using System.Text;
using LowRank.Models;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tests.Models;

/// <summary>
/// Corrupted safetensors files, shard indexes and configs, built byte by byte: each must be rejected with its own
/// error code and a message naming what is wrong — never another exception type.
/// </summary>
public sealed class MalformedModelFileTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public MalformedModelFileTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    public void Dispose() => _temp.Dispose();

    /// <summary>A safetensors file: 8-byte length, the header text as given (no padding), then <paramref name="dataBytes"/> zero bytes.</summary>
    private static byte[] File(string header, long dataBytes, ulong? declaredLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)json.Length);
        json.CopyTo(bytes, 8);
        return bytes;
    }

    private static readonly Dictionary<string, (Func<byte[]> Bytes, string Code, string Fragment)> SafetensorsCases = new()
    {
        ["shorter_than_the_length_prefix"] = (() => [1, 0, 0], ErrorCodes.BadSafetensors, "too short to hold the 8-byte header length"),
        ["header_length_past_end_of_file"] = (() => File("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 4, declaredLength: 4096),
            ErrorCodes.BadSafetensors, "header length 4096 runs past the end of the file"),
        ["header_length_over_limit"] = (() => File("{}", 0, declaredLength: 200_000_000), ErrorCodes.BadSafetensors, "exceeds the 100000000-byte limit"),
        ["header_length_zero"] = (() => File("", 0), ErrorCodes.BadSafetensors, "header length 0 is too small"),
        ["invalid_json"] = (() => File("""{"a":{"dtype":"F32",}""", 0), ErrorCodes.BadSafetensors, "header is not valid JSON"),
        ["invalid_utf8"] = (() => { var b = File("{\"a\u00e9\":1}", 0); b[11] = 0xFF; return b; }, ErrorCodes.BadSafetensors, "header is not valid JSON"),
        ["header_is_an_array"] = (() => File("""[{"dtype":"F32"}]""", 0), ErrorCodes.BadSafetensors, "header must be a JSON object, found an array"),
        ["tensor_is_not_an_object"] = (() => File("""{"w":[0,4]}""", 4), ErrorCodes.BadSafetensors, "tensor 'w': expected an object"),
        ["unknown_dtype"] = (() => File("""{"layer.w":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}}""", 4), ErrorCodes.BadSafetensors, "tensor 'layer.w': unknown dtype 'F12'"),
        ["missing_dtype"] = (() => File("""{"w":{"shape":[1],"data_offsets":[0,4]}}""", 4), ErrorCodes.BadSafetensors, "tensor 'w': 'dtype' must be a string but is missing"),
        ["missing_data_offsets"] = (() => File("""{"w":{"dtype":"F32","shape":[1]}}""", 4), ErrorCodes.BadSafetensors, "tensor 'w': 'data_offsets' must be an array [begin, end] but is missing"),
        ["negative_dimension"] = (() => File("""{"neg":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}}""", 16), ErrorCodes.BadSafetensors, "tensor 'neg': shape entry 0 is negative (-2)"),
        ["fractional_dimension"] = (() => File("""{"frac":{"dtype":"F32","shape":[2.5],"data_offsets":[0,10]}}""", 10), ErrorCodes.BadSafetensors, "tensor 'frac': shape entry 0 must be an integer, found 2.5"),
        ["overflowing_shape"] = (() => File("""{"huge":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}""", 4), ErrorCodes.BadSafetensors, "tensor 'huge': shape [4294967296, 4294967296] is too large"),
        ["shape_does_not_match_span"] = (() => File("""{"w":{"dtype":"F16","shape":[3,4],"data_offsets":[0,48]}}""", 48), ErrorCodes.BadSafetensors, "tensor 'w': shape [3, 4] of F16 needs 24 bytes but data_offsets [0, 48] span 48"),
        ["offsets_reversed"] = (() => File("""{"rev":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}}""", 8), ErrorCodes.BadSafetensors, "tensor 'rev': data_offsets [8, 4] end before they begin"),
        ["negative_offset"] = (() => File("""{"w":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}}""", 4), ErrorCodes.BadSafetensors, "tensor 'w': data_offsets entry -4 is negative"),
        ["offsets_past_data_section"] = (() => File("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", 12),
            ErrorCodes.BadSafetensors, "tensor 'b': data_offsets [8, 16] run past the end of the data section (12 bytes)"),
        ["overlapping_tensors"] = (() => File("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12),
            ErrorCodes.BadSafetensors, "tensors 'a' and 'b' overlap"),
        ["hole_between_tensors"] = (() => File("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", 12),
            ErrorCodes.BadSafetensors, "bytes 4..8 of the data section belong to no tensor (a hole before 'b')"),
        ["trailing_bytes"] = (() => File("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 12), ErrorCodes.BadSafetensors, "has 12 bytes but its tensors cover only 4 (last: 'a')"),
        ["duplicate_tensor_name"] = (() => File("""{"dup":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"dup":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""", 2),
            ErrorCodes.BadSafetensors, "tensor 'dup' is declared twice"),
        ["duplicate_field"] = (() => File("""{"w":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}}""", 1), ErrorCodes.BadSafetensors, "tensor 'w': field 'dtype' appears twice"),
        ["metadata_value_not_a_string"] = (() => File("""{"__metadata__":{"format":"pt","step":100}}""", 0), ErrorCodes.BadSafetensors, "'__metadata__' value of 'step' must be a string"),
        ["metadata_not_an_object"] = (() => File("""{"__metadata__":"pt"}""", 0), ErrorCodes.BadSafetensors, "'__metadata__' must be an object of strings, found a string"),
    };

    public static TheoryData<string> SafetensorsCaseNames => [.. SafetensorsCases.Keys];

    [Theory]
    [MemberData(nameof(SafetensorsCaseNames))]
    public void Corrupt_safetensors_file_is_rejected(string caseName)
    {
        var (bytes, code, fragment) = SafetensorsCases[caseName];
        var path = _temp.File(caseName + ".safetensors");
        System.IO.File.WriteAllBytes(path, bytes());
        var e = Assert.Throws<LrkException>(() => TensorStore.Open(path));
        Assert.Equal(code, e.Code);
        Assert.Contains(fragment, e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Header_padded_with_spaces_is_accepted()
    {
        // the control for the cases above: a well-formed file built the same way opens
        var path = _temp.File("ok.safetensors");
        System.IO.File.WriteAllBytes(path, File("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   """, 4));
        using var store = TensorStore.Open(path);
        Assert.Equal(["a"], store.Names);
    }

    [Fact]
    public void Dtype_without_a_torch_type_opens_but_does_not_load()
    {
        var path = _temp.File("u32.safetensors");
        System.IO.File.WriteAllBytes(path, File("""{"counts":{"dtype":"U32","shape":[2],"data_offsets":[0,8]}}""", 8));
        using var store = TensorStore.Open(path);
        Assert.Equal("U32", store.Info("counts").Dtype);
        var e = Assert.Throws<LrkException>(() => store.Load("counts"));
        Assert.Equal(ErrorCodes.BadSafetensors, e.Code);
        Assert.Contains("tensor 'counts' has dtype U32", e.Message);
    }

    [Fact]
    public void Unknown_tensor_name_is_a_missing_tensor()
    {
        var path = _temp.File("one.safetensors");
        SafeTensorsWriter.Write(path, [new("present", ones(1))]);
        using var store = TensorStore.Open(path);
        var e = Assert.Throws<LrkException>(() => store.Load("absent.weight"));
        Assert.Equal(ErrorCodes.MissingTensor, e.Code);
        Assert.Contains("'absent.weight'", e.Message);
        Assert.Equal(ErrorCodes.MissingTensor, Assert.Throws<LrkException>(() => store.Info("absent.weight")).Code);
    }

    // ---- sharded folders ----

    private string ShardedModel()
    {
        var folder = Path.Combine(_temp.Path, "sharded");
        SafeTensorsWriter.WriteModel(folder,
        [
            new TensorSpec("a", ScalarType.Float32, [256], () => ones(256)),
            new TensorSpec("b", ScalarType.Float32, [256], () => zeros(256)),
        ], maxShardBytes: 1024);
        return folder;
    }

    private static void WriteIndex(string folder, string json) => System.IO.File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"), json);

    [Theory]
    [InlineData("missing_shard", """{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00009-of-00009.safetensors"}}""", "shard 'model-00009-of-00009.safetensors' is listed but missing")]
    [InlineData("escapes_with_dotdot", """{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"../outside.safetensors"}}""", "'weight_map' entry of 'b' ('../outside.safetensors') points outside the model folder")]
    [InlineData("escapes_inside_then_out", """{"weight_map":{"a":"sub/../../sharded2/x.safetensors"}}""", "'weight_map' entry of 'a' ('sub/../../sharded2/x.safetensors') points outside the model folder")]
    [InlineData("absolute_path", """{"weight_map":{"a":"/etc/passwd"}}""", "'weight_map' entry of 'a' ('/etc/passwd') must be a file name relative to the model folder")]
    [InlineData("malformed_json", """{"weight_map":{"a":"model-00001-of-00002.safetensors",""", "is not valid JSON")]
    [InlineData("no_weight_map", """{"metadata":{"total_size":2048}}""", "'weight_map' must be an object mapping tensor names to shard files but is missing")]
    [InlineData("shard_not_a_string", """{"weight_map":{"a":7}}""", "'weight_map' entry of 'a' must be a shard file name")]
    [InlineData("tensor_not_in_its_shard", """{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors"}}""", "tensor 'b' is listed in shard 'model-00001-of-00002.safetensors', which does not hold it")]
    [InlineData("duplicate_entry", """{"weight_map":{"a":"model-00001-of-00002.safetensors","a":"model-00002-of-00002.safetensors"}}""", "tensor 'a' is listed twice")]
    [InlineData("empty_weight_map", """{"weight_map":{}}""", "'weight_map' lists no tensors")]
    public void Bad_shard_index_is_rejected(string caseName, string index, string fragment)
    {
        var folder = ShardedModel();
        WriteIndex(folder, index);
        var e = Assert.Throws<LrkException>(() => TensorStore.Open(folder));
        Assert.True(e.Code == ErrorCodes.BadShardIndex, $"{caseName}: {e.Code} {e.Message}");
        Assert.Contains(fragment, e.Message);
        Assert.Contains("model.safetensors.index.json", e.Message);
    }

    [Fact]
    public void Shard_index_that_is_not_utf8_is_rejected()
    {
        var folder = ShardedModel();
        var bytes = Encoding.UTF8.GetBytes("""{"weight_map":{"a?":"model-00001-of-00002.safetensors"}}""");
        bytes[Array.IndexOf(bytes, (byte)'?')] = 0xFF;
        System.IO.File.WriteAllBytes(Path.Combine(folder, "model.safetensors.index.json"), bytes);
        var e = Assert.Throws<LrkException>(() => TensorStore.Open(folder));
        Assert.Equal(ErrorCodes.BadShardIndex, e.Code);
        Assert.Contains("not UTF-8", e.Message);
    }

    [Fact]
    public void Shard_that_is_itself_corrupt_names_the_shard()
    {
        var folder = ShardedModel();
        var shard = Path.Combine(folder, "model-00002-of-00002.safetensors");
        var bytes = System.IO.File.ReadAllBytes(shard);
        System.IO.File.WriteAllBytes(shard, bytes[..^4]);
        var e = Assert.Throws<LrkException>(() => TensorStore.Open(folder));
        Assert.Equal(ErrorCodes.BadSafetensors, e.Code);
        Assert.Contains(shard, e.Message);
        Assert.Contains("tensor 'b'", e.Message);
    }

    [Fact]
    public void Pickle_only_folder_is_refused_without_reading_it()
    {
        var folder = Path.Combine(_temp.Path, "pickled");
        Directory.CreateDirectory(folder);
        System.IO.File.WriteAllBytes(Path.Combine(folder, "pytorch_model.bin"), [0x80, 0x02, 0x7d, 0x71, 0x00]);
        var e = Assert.Throws<LrkException>(() => TensorStore.Open(folder));
        Assert.Equal(ErrorCodes.ModelNotFound, e.Code);
        Assert.Contains("pytorch_model.bin", e.Message);
        Assert.Contains("safetensors is required", e.Message);
        var direct = Assert.Throws<LrkException>(() => TensorStore.Open(Path.Combine(folder, "pytorch_model.bin")));
        Assert.Contains("never loaded", direct.Message);
    }

    [Fact]
    public void Several_safetensors_without_an_index_are_ambiguous()
    {
        var folder = ShardedModel();
        System.IO.File.Delete(Path.Combine(folder, "model.safetensors.index.json"));
        var e = Assert.Throws<LrkException>(() => TensorStore.Open(folder));
        Assert.Equal(ErrorCodes.BadShardIndex, e.Code);
        Assert.Contains("2 .safetensors files but no model.safetensors.index.json", e.Message);
    }

    [Fact]
    public void Missing_folder_or_file_is_model_not_found()
    {
        var missing = Path.Combine(_temp.Path, "nowhere");
        Assert.Equal(ErrorCodes.ModelNotFound, Assert.Throws<LrkException>(() => TensorStore.Open(missing)).Code);
        Directory.CreateDirectory(missing);
        var e = Assert.Throws<LrkException>(() => TensorStore.Open(missing));
        Assert.Equal(ErrorCodes.ModelNotFound, e.Code);
        Assert.Contains("no model weights", e.Message);
    }

    // ---- config.json ----

    private const string GoodLlama = """
        "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100
        """;

    [Theory]
    [InlineData("no_architectures", "{" + GoodLlama + "}", "LRK2004", "names no architecture ('architectures' and 'model_type' are missing); supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, OPTForCausalLM, GPT2LMHeadModel")]
    [InlineData("unsupported_architecture", """{"architectures": ["FalconForCausalLM"], "hidden_size": 64}""", "LRK2004", "architecture 'FalconForCausalLM' is not supported (supported: LlamaForCausalLM")]
    [InlineData("unsupported_model_type", """{"model_type": "bert"}""", "LRK2004", "model_type 'bert' is not supported")]
    [InlineData("architectures_not_a_list", """{"architectures": "LlamaForCausalLM"}""", "LRK2003", "'architectures' must be a list of strings")]
    [InlineData("not_json", """{"architectures": ["LlamaForCausalLM"] "hidden_size": 64}""", "LRK2003", "not valid JSON")]
    [InlineData("not_an_object", """["LlamaForCausalLM"]""", "LRK2003", "must be a JSON object")]
    [InlineData("missing_hidden_size", """{"architectures": ["LlamaForCausalLM"], "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100}""", "LRK2003", "'hidden_size' is required but missing")]
    [InlineData("string_size", """{"architectures": ["LlamaForCausalLM"], "hidden_size": "64", "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100}""", "LRK2003", "'hidden_size' must be an integer, found \"64\"")]
    [InlineData("fractional_size", """{"architectures": ["LlamaForCausalLM"], "hidden_size": 64.5, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100}""", "LRK2003", "'hidden_size' must be an integer, found 64.5")]
    [InlineData("zero_layers", """{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 0, "vocab_size": 100}""", "LRK2003", "'num_hidden_layers' must be a positive integer, found 0")]
    [InlineData("heads_do_not_divide_hidden", """{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 6, "num_hidden_layers": 2, "vocab_size": 100}""", "LRK2003", "'hidden_size' (64) is not divisible by 'num_attention_heads' (6)")]
    [InlineData("kv_heads_do_not_divide_heads", """{"architectures": ["MistralForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 8, "num_key_value_heads": 3, "num_hidden_layers": 2, "vocab_size": 100}""", "LRK2003", "'num_attention_heads' (8) must be a multiple of 'num_key_value_heads' (3)")]
    [InlineData("gpt2_heads_do_not_divide", """{"architectures": ["GPT2LMHeadModel"], "n_embd": 100, "n_head": 12, "n_layer": 2, "vocab_size": 100}""", "LRK2003", "'n_embd' (100) is not divisible by 'n_head' (12)")]
    [InlineData("opt_missing_ffn_dim", """{"architectures": ["OPTForCausalLM"], "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100}""", "LRK2003", "'ffn_dim' is required but missing")]
    [InlineData("unsupported_rope_type", "{\"architectures\": [\"LlamaForCausalLM\"], " + GoodLlama + ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}", "LRK2003", "'rope_scaling.rope_type' 'yarn' is not supported")]
    [InlineData("llama3_rope_incomplete", "{\"architectures\": [\"LlamaForCausalLM\"], " + GoodLlama + ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}}", "LRK2003", "'rope_scaling.original_max_position_embeddings' is required for llama3 scaling but missing")]
    [InlineData("negative_rope_factor", "{\"architectures\": [\"LlamaForCausalLM\"], " + GoodLlama + ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": -2}}", "LRK2003", "'rope_scaling.factor' must be positive, found -2")]
    [InlineData("bool_as_string", "{\"architectures\": [\"LlamaForCausalLM\"], " + GoodLlama + ", \"tie_word_embeddings\": \"yes\"}", "LRK2003", "'tie_word_embeddings' must be true or false, found \"yes\"")]
    [InlineData("eos_list_with_string", "{\"architectures\": [\"LlamaForCausalLM\"], " + GoodLlama + ", \"eos_token_id\": [2, \"x\"]}", "LRK2003", "'eos_token_id[1]' must be an integer")]
    [InlineData("gpt2_unscaled_attention", """{"architectures": ["GPT2LMHeadModel"], "n_embd": 32, "n_head": 4, "n_layer": 2, "vocab_size": 100, "scale_attn_weights": false}""", "LRK2003", "'scale_attn_weights' = false (unscaled attention) is not supported")]
    [InlineData("opt_without_final_norm", """{"architectures": ["OPTForCausalLM"], "hidden_size": 64, "ffn_dim": 128, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100, "_remove_final_layer_norm": true}""", "LRK2003", "'_remove_final_layer_norm' = true (no final LayerNorm) is not supported")]
    [InlineData("layer_types_wrong_count", "{\"architectures\": [\"Qwen2ForCausalLM\"], " + GoodLlama + ", \"layer_types\": [\"full_attention\"]}", "LRK2003", "'layer_types' lists 1 layers but 'num_hidden_layers' is 2")]
    [InlineData("layer_types_unknown", "{\"architectures\": [\"MistralForCausalLM\"], " + GoodLlama + ", \"layer_types\": [\"full_attention\", \"chunked\"]}", "LRK2003", "'layer_types[1]' must be one of \"full_attention\", \"sliding_attention\", found \"chunked\"")]
    [InlineData("duplicate_key", """{"architectures": ["GPT2LMHeadModel"], "n_embd": 32, "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 100}""", "LRK2003", "'n_embd' appears twice")]
    public void Bad_config_is_rejected(string caseName, string json, string code, string fragment)
    {
        var path = _temp.File(caseName + ".json");
        System.IO.File.WriteAllText(path, json);
        var e = Assert.Throws<LrkException>(() => ModelConfigReader.Read(path));
        Assert.True(e.Code == code, $"{caseName}: {e.Code} {e.Message}");
        Assert.Contains(fragment, e.Message);
        Assert.StartsWith(path + ": ", e.Message);
    }

    [Fact]
    public void Folder_without_config_is_model_not_found()
    {
        var e = Assert.Throws<LrkException>(() => ModelConfigReader.Read(_temp.Path));
        Assert.Equal(ErrorCodes.ModelNotFound, e.Code);
        Assert.Contains("config.json", e.Message);
    }
}
