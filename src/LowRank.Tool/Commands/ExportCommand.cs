using System.CommandLine;
using LowRank.Artifacts;
using LowRank.Onnx;

namespace LowRank.Tool.Commands;

/// <summary>
/// <c>dotnet lowrank export &lt;model|artifact&gt; --dense|--onnx -o DIR</c>: an ordinary dense HF checkpoint (W = A·B)
/// for consumers without low-rank support, or an ONNX model (factorised linears kept as two MatMuls) for ONNX Runtime.
/// </summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A compressed artifact folder (--dense, --onnx) or a dense model folder / cached HF id (--onnx)" };
        var dense = new Option<bool>("--dense") { Description = "Multiply the factors back into dense weights: an HF checkpoint transformers loads" };
        var onnx = new Option<bool>("--onnx") { Description = "An ONNX model with KV cache (model.onnx, genai_config.json for LLaMA/Mistral/Qwen2); factorised linears stay two MatMuls" };
        var output = CommonOptions.Output<string>("Output folder (written atomically)", required: true);
        var dtype = CommonOptions.Typed<FactorDtype?>("--dtype", "--dense: dtype of the merged weights, fp32, fp16 or bf16 (default: the config's torch_dtype); --onnx: graph dtype, fp32 (default; runs on every provider) or fp16 (GPU providers)",
            text => FactorDtypes.Parse(text), helpName: "fp32|fp16|bf16");
        var externalData = CommonOptions.Typed("--external-data", "--onnx: keep the weights in model.onnx.data beside the graph: auto (above 1 GiB), always or never",
            ParseExternalData, () => ExternalData.Auto, "auto|always|never");
        var force = new Option<bool>("--force") { Description = "Replace --output if it exists" };
        var json = CommonOptions.Json();
        var command = new Command("export", "Write a model as an ordinary dense Hugging Face checkpoint (--dense, from an artifact) or as an ONNX model for ONNX Runtime and ONNX Runtime GenAI (--onnx).")
        {
            model, dense, onnx, output, dtype, externalData, force, json,
        };
        command.SetAction((parse, token) =>
        {
            var asDense = parse.GetValue(dense);
            var asOnnx = parse.GetValue(onnx);
            if (asDense == asOnnx)
                throw new LrkException(ErrorCodes.BadArgument, "say which export: --dense (an ordinary dense checkpoint) or --onnx (an ONNX model)");
            return Task.FromResult(asOnnx
                ? ExportOnnx(parse.GetValue(model)!, parse.GetValue(output)!, parse.GetValue(dtype), parse.GetValue(externalData), parse.GetValue(force), parse.GetValue(json), token)
                : ExportDense(parse.GetValue(model)!, parse.GetValue(output)!, parse.GetValue(dtype), parse.GetValue(force), parse.GetValue(json), token));
        });
        return command;
    }

    private static int ExportDense(string artifact, string output, FactorDtype? dtype, bool force, bool json, CancellationToken token)
    {
        Torch.TorchBackend.Initialize(DeviceRequest.Cpu);
        var result = DenseExporter.Export(artifact, output, new DenseExportOptions
        {
            Dtype = dtype,
            Overwrite = force,
        }, ToolProgress.Reporter, token);
        ToolProgress.Result(result, json, () =>
            Console.WriteLine($"{result.Folder}: dense {result.Dtype} checkpoint, {result.LinearsMerged} linears merged (W = A·B), {result.Parameters:N0} parameters"));
        return ExitCodes.Success;
    }

    /// <summary>Needs no libtorch: the exporter reads the safetensors itself.</summary>
    private static int ExportOnnx(string model, string output, FactorDtype? dtype, ExternalData externalData, bool force, bool json, CancellationToken token)
    {
        var result = OnnxExporter.Export(model, output, new OnnxExportOptions
        {
            Dtype = GraphDtype(dtype),
            ExternalData = externalData,
            Overwrite = force,
        }, ToolProgress.Reporter, token);
        ToolProgress.Result(result, json, () =>
        {
            var factorised = result.Linears.Where(l => l.IsFactorized).ToList();
            Console.WriteLine($"{result.Folder}: ONNX {result.Architecture}, {result.Dtype}, {result.Linears.Count} block linears " +
                $"({factorised.Count} factorised as two MatMuls, ranks {(factorised.Count == 0 ? "-" : $"{factorised.Min(l => l.Rank)}–{factorised.Max(l => l.Rank)}")}), " +
                $"weights {ByteSize.Format(result.WeightBytes)}{(result.ExternalData ? " in model.onnx.data" : "")}");
            Console.WriteLine(result.GenAiModelType is { } type
                ? $"  ONNX Runtime GenAI: genai_config.json (type {type}); files: {string.Join(", ", result.Files)}"
                : $"  files: {string.Join(", ", result.Files)} (no genai_config.json: ONNX Runtime GenAI has no model type for this family; run it with ONNX Runtime)");
        });
        return ExitCodes.Success;
    }

    /// <summary>The ONNX graph dtype of <c>--dtype</c>: fp32 (also the default) or fp16.</summary>
    private static OnnxDtype GraphDtype(FactorDtype? dtype) => dtype switch
    {
        null or FactorDtype.Float32 => OnnxDtype.Float,
        FactorDtype.Float16 => OnnxDtype.Float16,
        { } other => throw new LrkException(ErrorCodes.BadArgument, $"unknown ONNX graph dtype '{other.ShortName()}': use fp32 or fp16"),
    };

    private static ExternalData ParseExternalData(string text) => text.Trim().ToLowerInvariant() switch
    {
        "auto" => ExternalData.Auto,
        "always" => ExternalData.Always,
        "never" => ExternalData.Never,
        _ => throw new LrkException(ErrorCodes.BadArgument, $"--external-data '{text}': use auto, always or never"),
    };
}
