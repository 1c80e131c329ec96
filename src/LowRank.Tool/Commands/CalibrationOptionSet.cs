using System.CommandLine;
using LowRank.Data;

namespace LowRank.Tool.Commands;

/// <summary>
/// The calibration options, declared once for every command that compresses (<c>compress</c>, <c>bench methods</c>,
/// <c>bench quant</c>): the text and its byte range, the token protocol, and the sampler's N, L and seed, each parsed
/// by its option with the request's rules (<see cref="LowRank.Compression.CalibrationNumbers"/>).
/// </summary>
internal sealed class CalibrationOptionSet
{
    /// <param name="textDescription">What <c>--calib</c> is for this command.</param>
    /// <param name="required">Whether <c>--calib</c> must be given.</param>
    /// <param name="protocol">The command's <c>--protocol</c> (its description says which texts it applies to).</param>
    /// <param name="defaultSamples">N when <c>--samples</c> is not given.</param>
    public CalibrationOptionSet(string textDescription, bool required, Option<string> protocol, int defaultSamples)
    {
        Text = new Option<string?>("--calib") { Description = textDescription, Required = required };
        Protocol = protocol;
        Samples = CommonOptions.Samples("Calibration samples N", defaultSamples);
    }

    public Option<string?> Text { get; }
    public Option<long?> Start { get; } = new("--calib-start") { Description = "First byte of the calibration text to use" };
    public Option<long?> End { get; } = new("--calib-end") { Description = "Byte after the last one to use" };
    public Option<string> Protocol { get; }
    public Option<int> Samples { get; }
    public Option<int?> SeqLen { get; } = CommonOptions.SeqLen("Tokens per calibration sample L (default: 2048 or the model's context if shorter)");
    public Option<int> Seed { get; } = CommonOptions.Seed("Seed of the calibration sampler (and of AdaSVD's shuffle)");

    /// <summary>Every option, in the order help lists them.</summary>
    public IEnumerable<Option> All => [Text, Start, End, Protocol, Samples, SeqLen, Seed];

    /// <summary>The calibration a command line asks for: every value of these options, read once.</summary>
    public CalibrationSpec Read(ParseResult parse) => new()
    {
        Text = parse.GetValue(Text),
        ByteStart = parse.GetValue(Start),
        ByteEnd = parse.GetValue(End),
        Protocol = parse.GetValue(Protocol)!,
        Samples = parse.GetValue(Samples),
        SeqLen = parse.GetValue(SeqLen),
        Seed = parse.GetValue(Seed),
    };
}
