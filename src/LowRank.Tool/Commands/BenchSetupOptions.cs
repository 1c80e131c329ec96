using System.CommandLine;
using LowRank.Bench;
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
        Calibration = new CalibrationOptionSet("Calibration text", required: true, CommonOptions.Protocol("Text → token protocol of both texts: stream or plain"), defaultSamples);
        Set = new Option<string[]>("--set") { Description = setDescription };
    }

    public Argument<string> Model { get; } = new("model") { Description = "Model folder (HF layout)" };
    public CalibrationOptionSet Calibration { get; }
    public Option<string> Evaluation { get; } = new("--eval") { Description = "Evaluation text", Required = true };
    public Option<long?> EvaluationStart { get; } = new("--eval-start") { Description = "First byte of the evaluation text" };
    public Option<long?> EvaluationEnd { get; } = new("--eval-end") { Description = "Byte after the last evaluation byte" };
    public Option<int> Window { get; }
    public Option<string[]> Set { get; }
    public Option<DeviceRequest> Device { get; } = CommonOptions.Device();

    /// <summary>Adds the model argument and every option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Add(Model);
        foreach (var option in Calibration.All.Concat([Evaluation, EvaluationStart, EvaluationEnd, Window, Set, Device]))
            command.Add(option);
    }

    /// <summary><paramref name="setup"/> with every shared value from the command line.</summary>
    public T Fill<T>(T setup, ParseResult parse) where T : BenchmarkSetup => (T)(setup with
    {
        Model = parse.GetValue(Model)!,
        Calibration = Calibration.Read(parse),
        Evaluation = parse.GetValue(Evaluation)!,
        EvaluationByteStart = parse.GetValue(EvaluationStart),
        EvaluationByteEnd = parse.GetValue(EvaluationEnd),
        Window = parse.GetValue(Window),
        Device = parse.GetValue(Device),
        Set = parse.GetValue(Set) ?? [],
    });
}
