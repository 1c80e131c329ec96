// CA1861: the inline tables of hostile values are the point of these files; one allocation per fuzz case is nothing next to a process start.
#pragma warning disable CA1861
using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace LowRank.Bench.Fuzz;

/// <summary>
/// Mutations of a model folder (a copy of the source model): its safetensors header and data, config.json, the
/// tokenizer files, and a sharded layout with its index. Each returns the mutation's name; the case then runs a
/// command that loads the model.
/// </summary>
public static class ModelFileMutations
{
    private const string Weights = "model.safetensors";

    public static string SafeTensorsHeader(FuzzContext c, string model)
    {
        var path = Path.Combine(model, Weights);
        var image = SafeTensorsImage.Read(path);
        var names = image.TensorNames.ToList();
        var name = c.Pick(names);
        var header = Encoding.UTF8.GetBytes(image.Header.ToJsonString());
        switch (c.Random.Next(12))
        {
            case 0:
                File.WriteAllBytes(path, SafeTensorsImage.Encode(header, image.Data, c.Pick(new ulong[] { ulong.MaxValue, 1UL << 63, 1UL << 40, (ulong)(header.Length + image.Data.Length + 1) })));
                return "length-too-large";
            case 1:
                File.WriteAllBytes(path, SafeTensorsImage.Encode(header, image.Data, (ulong)Math.Max(0, header.Length - c.Random.Next(1, 40))));
                return "length-too-small";
            case 2:
                for (var i = 0; i < c.Random.Next(1, 4); i++) header[c.Random.Next(header.Length)] = (byte)c.Random.Next(256);
                File.WriteAllBytes(path, SafeTensorsImage.Encode(header, image.Data));
                return "header-byte-flip";
            case 3:
                File.WriteAllBytes(path, SafeTensorsImage.Encode(header[..c.Random.Next(header.Length)], image.Data));
                return "header-truncated";
            case 4:
                image.Tensor(name)["dtype"] = c.Pick(new JsonNode?[] { "F32", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3", "Q4", "", "f16", 5, null });
                image.Write(path);
                return "dtype";
            case 5:
            {
                var shape = image.Tensor(name)["shape"]!.AsArray();
                if (shape.Count > 0 && c.Chance(0.8)) shape[c.Random.Next(shape.Count)] = c.Pick(new JsonNode?[] { 0, -1, 1, 3, 1L << 31, 1L << 40, 1e300, "8", null });
                else image.Tensor(name)["shape"] = c.Pick(new JsonNode?[] { new JsonArray(), new JsonArray(1, 2, 3, 4, 5), "128", null });
                image.Write(path);
                return "shape";
            }
            case 6:
            {
                var (begin, end) = image.Offsets(name);
                var bad = c.Pick(new long[][] { [0, image.Data.Length + 1], [end, begin], [-1, 10], [0, 1L << 62], [begin, end - 2], [begin + 1, end + 1] });
                image.Tensor(name)["data_offsets"] = new JsonArray(bad[0], bad[1]);
                image.Write(path);
                return "data-offsets";
            }
            case 7:
                image.Header.Remove(name);
                image.Write(path);
                return "tensor-dropped";
            case 8:
            {
                var tensor = image.Tensor(name);
                image.Header.Remove(name);
                const string loneSurrogate = "LONE-SURROGATE"; // System.Text.Json will not write one; the JSON escape goes in as text
                image.Header[c.Pick(new[] { name + "x", "", loneSurrogate, "model.layers.99.mlp.up_proj.weight", "../etc/passwd", name.ToUpperInvariant(), name + "\u0000" })] = tensor.DeepClone();
                File.WriteAllBytes(path, SafeTensorsImage.Encode(image.Header.ToJsonString().Replace(loneSurrogate, "\\ud800", StringComparison.Ordinal), image.Data));
                return "tensor-renamed";
            }
            case 9:
            {
                // The same tensor name twice in the header's JSON text.
                var text = image.Header.ToJsonString();
                var entry = $"\"{name}\":{image.Tensor(name).ToJsonString()}";
                File.WriteAllBytes(path, SafeTensorsImage.Encode(text.Insert(1, entry + ","), image.Data));
                return "duplicate-name";
            }
            case 10:
                if (c.Chance(0.25))
                {
                    // Nesting deeper than any JSON reader's default limit.
                    var text = image.Header.ToJsonString();
                    File.WriteAllBytes(path, SafeTensorsImage.Encode("{\"__deep\":" + Nest(c.Pick(new[] { 100, 5000 })) + "," + text[1..], image.Data));
                    return "deep-nesting";
                }
                image.Header["__metadata__"] = c.Pick(new JsonNode?[] { 5, new JsonArray(1), new JsonObject { ["format"] = 5 }, null });
                image.Write(path);
                return "metadata";
            default:
                image.Header["extra." + c.Random.Next(1000) + ".weight"] = new JsonObject
                {
                    ["dtype"] = "F16",
                    ["shape"] = new JsonArray(c.Pick(new long[] { 16, 1 << 20, 1L << 40 })),
                    ["data_offsets"] = new JsonArray(0, 32),
                };
                image.Write(path);
                return "extra-tensor";
        }
    }

    public static string SafeTensorsData(FuzzContext c, string model)
    {
        var path = Path.Combine(model, Weights);
        var image = SafeTensorsImage.Read(path);
        var linears = image.TensorNames.Where(n => n.Contains("proj", StringComparison.Ordinal)).ToList();
        var name = c.Pick(c.Chance(0.7) ? linears : image.TensorNames.ToList());
        var (begin, end) = image.Offsets(name);
        void Fill(Func<int, ushort> value, double share)
        {
            for (var i = begin; i + 2 <= end; i += 2)
                if (c.Random.NextDouble() < share) BinaryPrimitives.WriteUInt16LittleEndian(image.Data.AsSpan((int)i), value((int)i));
        }
        switch (c.Random.Next(11))
        {
            case 0:
                File.WriteAllBytes(path, File.ReadAllBytes(path)[..c.Random.Next(8, (int)new FileInfo(path).Length)]);
                return "truncated";
            case 1:
                Fill(_ => 0x7E00, c.Pick(new[] { 0.001, 0.1, 1.0 }));
                break;
            case 2:
                Fill(_ => c.Chance(0.5) ? (ushort)0x7C00 : (ushort)0xFC00, c.Pick(new[] { 0.001, 0.1, 1.0 }));
                image.Write(path);
                return "inf";
            case 3:
                Fill(_ => c.Chance(0.5) ? (ushort)0x7BFF : (ushort)0xFBFF, 1.0); // fp16 max: products overflow
                image.Write(path);
                return "fp16-max";
            case 4:
                image.Data.AsSpan((int)begin, (int)(end - begin)).Clear();
                image.Write(path);
                return "zeros";
            case 5:
                c.Random.NextBytes(image.Data.AsSpan((int)begin, (int)(end - begin)));
                image.Write(path);
                return "random-bytes";
            case 6:
            {
                var extra = new byte[c.Random.Next(1, 4096)];
                c.Random.NextBytes(extra);
                File.WriteAllBytes(path, [.. File.ReadAllBytes(path), .. extra]);
                return "trailing-bytes";
            }
            case 7:
                File.WriteAllBytes(path, []);
                return "empty-file";
            case 8:
                File.Delete(path);
                Directory.CreateDirectory(path);
                return "directory";
            case 9:
                File.Delete(path);
                File.CreateSymbolicLink(path, path);
                return "symlink-loop";
            default:
                File.Delete(path);
                if (!MakeFifo(path)) File.WriteAllBytes(path, []);
                return "fifo";
        }
        image.Write(path);
        return "nan";
    }

    public static string Config(FuzzContext c, string model)
    {
        var path = Path.Combine(model, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var keys = new[] { "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size", "vocab_size", "max_position_embeddings", "head_dim", "rms_norm_eps", "bos_token_id", "eos_token_id" };
        switch (c.Random.Next(9))
        {
            case 0:
            case 1:
            case 2:
            {
                var key = c.Pick(keys);
                config[key] = c.Pick(new JsonNode?[] { 0, -1, 1, 2, 7, int.MaxValue, 1_000_000_000, 1e308, -1e308, 1.5, "12", true, null, new JsonArray() });
                File.WriteAllText(path, config.ToJsonString());
                return "value:" + key;
            }
            case 3:
            {
                var key = c.Pick(keys.Concat(["model_type", "architectures", "tie_word_embeddings", "rope_parameters", "dtype"]).ToList());
                config.Remove(key);
                File.WriteAllText(path, config.ToJsonString());
                return "missing:" + key;
            }
            case 4:
                config[c.Pick(new[] { "model_type", "dtype", "hidden_act", "architectures" })] = c.Pick(new JsonNode?[] { "gpt-j", "", "float128", "gelu_magic", new JsonArray("X"), 5 });
                File.WriteAllText(path, config.ToJsonString());
                return "unknown-value";
            case 5:
                config["tie_word_embeddings"] = false;
                File.WriteAllText(path, config.ToJsonString());
                return "untied-without-lm-head";
            case 6:
            {
                var text = File.ReadAllBytes(path);
                File.WriteAllBytes(path, text[..c.Random.Next(text.Length)]);
                return "truncated";
            }
            case 7:
            {
                var bytes = File.ReadAllBytes(path);
                var at = c.Random.Next(bytes.Length);
                bytes[at] = c.Pick(new byte[] { 0xFF, 0xC3, 0x80, 0xED, 0x00 });
                File.WriteAllBytes(path, bytes);
                return "bad-byte";
            }
            default:
                File.WriteAllText(path, c.Pick(new[] { "", "null", "[]", "\"x\"", "\uFEFF" + config.ToJsonString(), Nest(5000), config.ToJsonString().Replace("\"hidden_size\"", "\"hidden_size\":128,\"hidden_size\"", StringComparison.Ordinal) }));
                return "document";
        }
    }

    public static string Tokenizer(FuzzContext c, string model)
    {
        var file = Path.Combine(model, c.Pick(new[] { "tokenizer.json", "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json" }));
        var label = Path.GetFileName(file);
        switch (c.Random.Next(7))
        {
            case 0:
                File.Delete(file);
                return label + ":missing";
            case 1:
            {
                var bytes = File.ReadAllBytes(file);
                File.WriteAllBytes(file, bytes[..c.Random.Next(bytes.Length)]);
                return label + ":truncated";
            }
            case 2:
            {
                var bytes = File.ReadAllBytes(file);
                for (var i = 0; i < c.Random.Next(1, 6); i++) bytes[c.Random.Next(bytes.Length)] = (byte)c.Random.Next(256);
                File.WriteAllBytes(file, bytes);
                return label + ":byte-flip";
            }
            case 3:
            {
                var bytes = File.ReadAllBytes(file);
                bytes[c.Random.Next(bytes.Length)] = c.Pick(new byte[] { 0xFF, 0xC0, 0xED, 0x80 });
                File.WriteAllBytes(file, bytes);
                return label + ":invalid-utf8";
            }
            case 4 when label == "tokenizer.json":
            {
                var json = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
                var vocab = json["model"]?["vocab"]?.AsObject();
                if (vocab is not null && vocab.Count > 0)
                {
                    var token = vocab.ElementAt(c.Random.Next(vocab.Count)).Key;
                    vocab[token] = c.Pick(new JsonNode?[] { -1, int.MaxValue, 1_000_000, "x", null });
                }
                File.WriteAllText(file, json.ToJsonString());
                return label + ":vocab-id";
            }
            case 5 when label == "tokenizer.json":
            {
                var json = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
                json["added_tokens"] = new JsonArray(new JsonObject { ["id"] = c.Pick(new JsonNode?[] { int.MaxValue, -5, "a" }), ["content"] = "<x>", ["special"] = true });
                File.WriteAllText(file, json.ToJsonString());
                return label + ":added-token";
            }
            default:
                File.WriteAllText(file, c.Pick(new[] { "", "{}", "[]", "null", "#version: 0.2\nA\n", "\"\\ud800\"", "{\"model\":{\"vocab\":{\"\\udc00\":0}}}" }));
                return label + ":replaced";
        }
    }

    /// <summary>Splits the weights into two shards with an index, then breaks one thing (or nothing: the control).</summary>
    public static string ShardIndex(FuzzContext c, string model)
    {
        var path = Path.Combine(model, Weights);
        var image = SafeTensorsImage.Read(path);
        File.Delete(path);
        var names = image.TensorNames.ToList();
        var split = names.Count / 2;
        var map = new JsonObject();
        for (var s = 0; s < 2; s++)
        {
            var shardName = $"model-0000{s + 1}-of-00002.safetensors";
            var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
            using var data = new MemoryStream();
            foreach (var name in s == 0 ? names[..split] : names[split..])
            {
                var (begin, end) = image.Offsets(name);
                var tensor = image.Tensor(name).DeepClone().AsObject();
                tensor["data_offsets"] = new JsonArray(data.Length, data.Length + end - begin);
                data.Write(image.Data, (int)begin, (int)(end - begin));
                header[name] = tensor;
                map[name] = shardName;
            }
            File.WriteAllBytes(Path.Combine(model, shardName), SafeTensorsImage.Encode(header.ToJsonString(), data.ToArray()));
        }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = image.Data.Length }, ["weight_map"] = map };
        var indexPath = Path.Combine(model, "model.safetensors.index.json");
        var victim = c.Pick(names);
        string mutation;
        switch (c.Random.Next(10))
        {
            case 0:
                mutation = "control";
                break;
            case 1:
            case 2:
                map[victim] = c.Pick(new[] { "../model/evil.safetensors", "../../../../etc/passwd", "/etc/passwd", "sub/../../x.safetensors", "/proc/self/mem", "..", "" });
                mutation = "path-traversal";
                break;
            case 3:
                File.Delete(Path.Combine(model, "model-00002-of-00002.safetensors"));
                mutation = "missing-shard";
                break;
            case 4:
                map[victim] = map[victim]!.GetValue<string>() == "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
                mutation = "wrong-shard";
                break;
            case 5:
                map.Remove(victim);
                mutation = "unmapped-tensor";
                break;
            case 6:
                index["weight_map"] = c.Pick(new JsonNode?[] { new JsonArray("a"), "x", null, 5 });
                mutation = "weight-map-type";
                break;
            case 7:
                File.Delete(Path.Combine(model, "model-00002-of-00002.safetensors"));
                Directory.CreateDirectory(Path.Combine(model, "model-00002-of-00002.safetensors"));
                mutation = "shard-is-directory";
                break;
            case 8:
                map[victim] = "nonexistent.safetensors";
                mutation = "unknown-shard";
                break;
            default:
                File.WriteAllText(indexPath, index.ToJsonString()[..c.Random.Next(index.ToJsonString().Length)]);
                return "index-truncated";
        }
        File.WriteAllText(indexPath, index.ToJsonString());
        return mutation;
    }

    private static string Nest(int depth) => new string('[', depth) + new string(']', depth);

    private static bool MakeFifo(string path)
    {
        try
        {
            using var mkfifo = System.Diagnostics.Process.Start("mkfifo", [path]);
            mkfifo.WaitForExit();
            return mkfifo.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
