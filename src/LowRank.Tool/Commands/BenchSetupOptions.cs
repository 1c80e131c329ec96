using System.CommandLine;
using LowRank.Bench;
using LowRank.Compression;
using LowRank.Torch;

namespace LowRank.Tool.Commands;

/// <summary>The options of a compress-and-evaluate benchmark (<see cref="BenchmarkSetup"/>), declared once for
/// <c>bench methods</c> and <c>bench quant</c>: the model, both texts, the protocol, the window, the sampler, the device
/// and <c>--set</c>.</summary>
internal sealed class BenchSetupOptions
{
    public BenchSetupOptions(string windowDescription, int defaultSamples, string setDescription)
    {
        Window = new Option<int>("--window") { Description = windowDescription, DefaultValueFactory = _ => 512 };
        Samples = new Option<int>("--samples") { Description = "Calibration samples N", DefaultValueFactory = _ => defaultSamples };
        Set = new Option<string[]>("--set") { Description = setDescription };
    }

    public Argument<string> Model { get; } = new("model") { Description = "Model folder (HF layout)" };
    public Option<string> Calibration { get; } = new("--calib") { Description = "Calibration text", Required = true };
    public Option<long?> CalibrationStart { get; } = new("--calib-start") { Description = "First byte of the calibration text" };
    public Option<long?> CalibrationEnd { get; } = new("--calib-end") { Description = "Byte after the last calibration byte" };
    public Option<string> Evaluation { get; } = new("--eval") { Description = "Evaluation text", Required = true };
    public Option<long?> EvaluationStart { get; } = new("--eval-start") { Description = "First byte of the evaluation text" };
    public Option<long?> EvaluationEnd { get; } = new("--eval-end") { Description = "Byte after the last evaluation byte" };
    public Option<string> Protocol { get; } = CommonOptions.Protocol("Text → token protocol of both texts: stream or plain");
    public Option<int> Window { get; }
    public Option<int> Samples { get; }
    public Option<int?> SeqLen { get; } = new("--seq-len") { Description = "Tokens per calibration sample (default: min(2048, context))" };
    public Option<int> Seed { get; } = new("--seed") { Description = "Calibration sampler seed", DefaultValueFactory = _ => CompressionDefaults.Seed };
    public Option<string[]> Set { get; }
    public Option<string> Device { get; } = CommonOptions.Device();

    /// <summary>Adds the model argument and every option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Add(Model);
        foreach (var option in new Option[] { Calibration, CalibrationStart, CalibrationEnd, Evaluation, EvaluationStart, EvaluationEnd, Protocol, Window, Samples, SeqLen, Seed, Set, Device })
            command.Add(option);
    }

    /// <summary><paramref name="setup"/> with every shared value from the command line.</summary>
    public T Fill<T>(T setup, ParseResult parse) where T : BenchmarkSetup => (T)(setup with
    {
        Model = parse.GetValue(Model)!,
        Calibration = parse.GetValue(Calibration)!,
        CalibrationByteStart = parse.GetValue(CalibrationStart),
        CalibrationByteEnd = parse.GetValue(CalibrationEnd),
        Evaluation = parse.GetValue(Evaluation)!,
        EvaluationByteStart = parse.GetValue(EvaluationStart),
        EvaluationByteEnd = parse.GetValue(EvaluationEnd),
        Protocol = parse.GetValue(Protocol)!,
        Window = parse.GetValue(Window),
        Samples = parse.GetValue(Samples),
        SeqLen = parse.GetValue(SeqLen),
        Seed = parse.GetValue(Seed),
        Device = TorchBackend.ParseDevice(parse.GetValue(Device)),
        Set = parse.GetValue(Set) ?? [],
    });
}
