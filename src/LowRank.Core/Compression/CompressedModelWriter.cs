using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LowRank.Data;
using LowRank.Models;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// Writes a compressed model as an HF-style folder that <see cref="ModelLoader"/> reads back (interim format until the
/// artifact issue defines the final one):
/// <list type="bullet">
/// <item><c>config.json</c>: the source config unchanged plus a <c>"lowrank"</c> section (method, requested and achieved
/// ratios, the rank of every linear, every option, the calibration protocol);</item>
/// <item><c>model.safetensors</c>: factorised linears as <c>&lt;linear&gt;.lowrank_A.weight</c> [out, k] and
/// <c>&lt;linear&gt;.lowrank_B.weight</c> [k, in], dense ones as <c>&lt;linear&gt;.weight</c> (GPT-2: Conv1D [in, out]
/// layout, as in the source), biases as <c>&lt;linear&gt;.bias</c>, every other tensor unchanged (tied embeddings once);</item>
/// <item>the tokenizer and other small files of the source folder, copied;</item>
/// <item><c>report.json</c>: the full <see cref="CompressionReport"/>.</item>
/// </list>
/// Everything is assembled in a temporary folder beside the target and renamed into place last, so an interrupted
/// write (Ctrl+C, a crash) leaves nothing that looks like a model.
/// </summary>
public static class CompressedModelWriter
{
    public const string ReportFileName = "report.json";
    public const string ConfigSection = "lowrank";

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Files of a source folder that are weights (rewritten) or the config (rewritten), never copied.</summary>
    private static readonly string[] WeightSuffixes = [".safetensors", ".safetensors.index.json", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf"];

    /// <summary>Fails early (before any compression work) when <paramref name="outFolder"/> cannot be written.</summary>
    public static string CheckTarget(string outFolder, bool force)
    {
        var target = Path.GetFullPath(outFolder);
        if (File.Exists(target)) throw new LrkException(ErrorCodes.OutputExists, $"--out {outFolder} is a file");
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any() && !force)
            throw new LrkException(ErrorCodes.OutputExists, $"--out {outFolder} exists and is not empty (use --force to replace it)");
        return target;
    }

    public static void Write(string outFolder, IDecoderModel model, string sourceFolder, CompressionReport report,
        CalibrationProtocol? calibration, bool force, CancellationToken cancellationToken = default)
    {
        var target = CheckTarget(outFolder, force);
        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(target)}.compress-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        try
        {
            var config = (JsonObject?)model.Config.Raw?.DeepClone() ?? new JsonObject();
            config[ConfigSection] = ConfigRecord(report, calibration);
            File.WriteAllText(Path.Combine(temp, "config.json"), config.ToJsonString(JsonOptions));

            var metadata = new Dictionary<string, string>
            {
                ["format"] = "pt",
                ["lowrank.method"] = report.Method,
                ["lowrank.ratio"] = report.Options.Ratio.ToString("R"),
            };
            SafeTensorsWriter.WriteModel(temp, TensorSpecs(model, cancellationToken), metadata);

            foreach (var file in Directory.EnumerateFiles(sourceFolder))
            {
                var name = Path.GetFileName(file);
                if (name is "config.json" or ReportFileName || WeightSuffixes.Any(s => name.EndsWith(s, StringComparison.OrdinalIgnoreCase))) continue;
                if (name.StartsWith("pytorch_model", StringComparison.Ordinal) || name.StartsWith("model-", StringComparison.Ordinal)) continue;
                File.Copy(file, Path.Combine(temp, name));
            }
            File.WriteAllText(Path.Combine(temp, ReportFileName),
                JsonSerializer.Serialize(new { report, calibration, source = sourceFolder, writtenUtc = DateTime.UtcNow.ToString("O") }, JsonOptions));
            cancellationToken.ThrowIfCancellationRequested();

            if (Directory.Exists(target))
            {
                var old = temp + ".old";
                Directory.Move(target, old);
                try
                {
                    Directory.Move(temp, target);
                }
                catch
                {
                    Directory.Move(old, target);
                    throw;
                }
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(temp, target);
            }
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    /// <summary>The <c>"lowrank"</c> section of config.json.</summary>
    public static JsonObject ConfigRecord(CompressionReport report, CalibrationProtocol? calibration)
    {
        var ranks = new JsonObject();
        foreach (var module in report.Modules) ranks[module.Name] = module.Dense ? JsonValue.Create("dense") : JsonValue.Create(module.Rank);
        return new JsonObject
        {
            ["format_version"] = 1,
            ["method"] = report.Method,
            ["requested_ratio"] = report.Ratio.RequestedRatio,
            ["achieved_linear_ratio"] = report.Ratio.AchievedLinearRatio,
            ["achieved_model_ratio"] = report.Ratio.AchievedModelRatio,
            ["ratio_convention"] = "fraction of parameters removed",
            ["factor_suffixes"] = new JsonArray(DecoderModel.FactorASuffix, DecoderModel.FactorBSuffix),
            ["ranks"] = ranks,
            ["options"] = JsonSerializer.SerializeToNode(report.Options, JsonOptions),
            ["calibration"] = calibration is null ? null : JsonSerializer.SerializeToNode(calibration, JsonOptions),
        };
    }

    private static List<TensorSpec> TensorSpecs(IDecoderModel model, CancellationToken cancellationToken)
    {
        var specs = new List<TensorSpec>();
        var seen = new HashSet<IntPtr>();
        foreach (var (name, tensor) in model.OtherTensors)
        {
            if (!seen.Add(tensor.Handle)) continue;
            specs.Add(new TensorSpec(name, tensor.dtype, tensor.shape, () => Checked(tensor, cancellationToken)));
        }
        var conv1D = model.Config.Family == ModelFamily.Gpt2;
        for (var block = 0; block < model.BlockCount; block++)
        {
            foreach (var linear in model.BlockLinears(block))
            {
                if (linear.IsFactorized)
                {
                    var a = linear.A!;
                    var b = linear.B!;
                    specs.Add(new TensorSpec(linear.Name + DecoderModel.FactorASuffix, a.dtype, a.shape, () => Checked(a, cancellationToken)));
                    specs.Add(new TensorSpec(linear.Name + DecoderModel.FactorBSuffix, b.dtype, b.shape, () => Checked(b, cancellationToken)));
                }
                else
                {
                    var w = linear.Weight!;
                    specs.Add(conv1D
                        ? new TensorSpec(linear.Name + ".weight", w.dtype, [w.shape[1], w.shape[0]], () => Checked(w, cancellationToken).t().contiguous())
                        : new TensorSpec(linear.Name + ".weight", w.dtype, w.shape, () => Checked(w, cancellationToken)));
                }
                if (linear.Bias is { } bias) specs.Add(new TensorSpec(linear.Name + ".bias", bias.dtype, bias.shape, () => Checked(bias, cancellationToken)));
            }
        }
        return specs;
    }

    private static Tensor Checked(Tensor tensor, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return tensor;
    }
}
