using System.CommandLine;
using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Evaluation;
using LowRank.Jobs;
using LowRank.Quantization;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tool.Commands;

/// <summary>
/// <c>compress</c>'s options, each parsed by the option itself into a typed value (<see cref="CommonOptions.Typed{T}"/>),
/// and <see cref="Job"/>, the one mapping from a command line to a <see cref="CompressionJobOptions"/>.
/// </summary>
internal sealed class CompressOptions
{
    public Argument<string> Model { get; } = new("model") { Description = "Model folder (HF layout: config.json, *.safetensors, tokenizer)" };
    public Option<CompressionMethod> Method { get; } = CommonOptions.Method();
    public Option<double?> Ratio { get; } = CommonOptions.Typed<double?>("--ratio",
        "Fraction of the block linears' parameters to REMOVE, in (0, 1) (0.2 keeps 80%); required by the low-rank methods, ignored by rtn/gptq",
        text => CompressionRatio.Parse(text, "--ratio"));
    public Option<int?> Bits { get; } = new("--bits") { Description = "rtn/gptq: bits per weight, 8 (per output channel), 4 or 3 (group-wise, --group-size)" };
    public Option<double?> TargetBits { get; } = new Option<double?>("--target-bits") { Description = "SVD-LLM: instead of --ratio, a budget in bits per original weight of the block linears; every linear's rank and storage (int8/int4 factors, or dense GPTQ 8/4/3-bit or fp16) are chosen under it" }.Invariant();
    public Option<int?> GroupSize { get; } = new("--group-size") { Description = "Input columns per scale of 4- and 3-bit storage: 32, 64 or 128 (default 128)" };
    public CalibrationOptionSet Calibration { get; } = new("Calibration text: a file, folder or npm:<corpus> (needed by every method but SVD)", required: false,
        CommonOptions.Protocol("Text → token protocol of the calibration text: stream (paragraphs joined by one newline token) or plain", "--calib-protocol"),
        CompressionDefaults.Samples);
    public Option<int> BatchSize { get; } = CommonOptions.BatchSize<int>("Calibration samples per forward pass (memory only; the result does not depend on it)", () => CompressionDefaults.BatchSize);
    public Option<string[]> Set { get; } = new("--set") { Description = "Any compression option as Name=Value, repeatable (e.g. AdaSvdIterations=3, Propagation=Compressed)", AllowMultipleArgumentsPerToken = false };
    public Option<FactorStorage?> FactorDtype { get; } = CommonOptions.Typed<FactorStorage?>("--factor-dtype",
        $"Dtype of the stored factors: fp32, fp16, bf16 (default: the model's torch_dtype), or quantized: {QuantFormat.Spellings}",
        text => FactorStorage.Parse(text, "--factor-dtype", ErrorCodes.BadArgument), helpName: "factor-dtype");
    public Option<string?> Evaluation { get; } = new("--eval") { Description = "Measure perplexity on this text (file, folder or npm:<corpus>) before and after compressing; recorded in the manifest" };
    public Option<long?> EvaluationStart { get; } = new("--eval-start") { Description = "First byte of the evaluation text to use" };
    public Option<long?> EvaluationEnd { get; } = new("--eval-end") { Description = "Byte after the last one to use" };
    public Option<int?> EvaluationWindow { get; } = new("--eval-window") { Description = "Perplexity window in tokens (default: the model's context, at most 2048)" };
    public Option<string> Output { get; } = CommonOptions.Output<string>("Output folder (written atomically: nothing appears there until the artifact is complete)", required: true);
    public Option<bool> Force { get; } = new("--force") { Description = "Replace --output if it exists" };
    public Option<ModelFormats> Format { get; } = CommonOptions.Typed("--format",
        "What to write: safetensors (the compressed artifact), onnx (its ONNX export only: model.onnx, genai_config.json, tokenizer), or safetensors;onnx (the artifact with the export in onnx/)",
        ModelFormats.Parse, () => ModelFormats.Default, "format");
    public Option<ScalarType> ComputeDtype { get; } = CommonOptions.ComputeDtype("Compute dtype while compressing: fp32, fp16 or bf16 (fp16/bf16 are faster on GPUs and change the result a little)");
    public Option<BlockStreaming> StreamBlocks { get; } = CommonOptions.Typed("--stream-blocks",
        "auto, on or off: keep only the block being compressed on the GPU, reading weights as needed (auto: on for GPUs, except FWSVD)",
        BlockStreamings.Parse, () => BlockStreaming.Auto, "auto|on|off");
    public Option<DeviceRequest> Device { get; } = CommonOptions.Device();
    public Option<bool> Json { get; } = CommonOptions.Json();
    public Option<string?> LibTorch { get; } = CommonOptions.LibTorch();

    /// <summary>Adds the model argument and every option to <paramref name="command"/>, in the order help lists them.</summary>
    public void AddTo(Command command)
    {
        command.Add(Model);
        foreach (var option in new Option[] { Method, Ratio, Bits, TargetBits, GroupSize }.Concat(Calibration.All).Concat(
            [BatchSize, Set, FactorDtype, Evaluation, EvaluationStart, EvaluationEnd, EvaluationWindow, Output, Force, Format, ComputeDtype, StreamBlocks, Device, Json, LibTorch]))
            command.Add(option);
    }

    /// <summary>The engine's options of a command line: the typed values, <c>--set</c> applied, checked.</summary>
    public CompressionOptions Compression(ParseResult parse)
    {
        var method = parse.GetValue(Method);
        var options = new CompressionOptions
        {
            Method = method,
            Ratio = method.IsQuantizationOnly() ? 0 : parse.GetValue(Ratio) ?? 0,
            Bits = parse.GetValue(Bits),
            TargetBits = parse.GetValue(TargetBits),
            BatchSize = parse.GetValue(BatchSize),
            Seed = parse.GetValue(Calibration.Seed),
        };
        if (parse.GetValue(GroupSize) is { } group) options = options with { GroupSize = group };
        options = CompressionOptionsText.Apply(options, parse.GetValue(Set) ?? []);
        options.Validate();
        return options;
    }

    /// <summary>The job a command line asks for.</summary>
    public CompressionJobOptions Job(ParseResult parse)
    {
        var compression = Compression(parse);
        var factors = parse.GetValue(FactorDtype);
        return new CompressionJobOptions
        {
            Model = parse.GetValue(Model)!,
            Out = parse.GetValue(Output)!,
            Compression = compression,
            Calibration = Calibration.Read(parse),
            FactorDtype = factors?.FloatDtype(),
            FactorFormat = factors is { IsQuantized: true } quantized ? compression.FactorFormat(quantized) : null,
            Evaluation = parse.GetValue(Evaluation) is { } text
                ? new TextPerplexitySpec { Text = text, ByteStart = parse.GetValue(EvaluationStart), ByteEnd = parse.GetValue(EvaluationEnd), WindowLength = parse.GetValue(EvaluationWindow) }
                : null,
            Device = parse.GetValue(Device),
            ComputeDtype = parse.GetValue(ComputeDtype),
            StreamBlocks = parse.GetValue(StreamBlocks).AsOption(),
            LibTorch = parse.GetValue(LibTorch),
            Force = parse.GetValue(Force),
        };
    }
}
