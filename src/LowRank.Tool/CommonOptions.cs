using System.CommandLine;
using System.CommandLine.Parsing;
using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Data;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Tool;

/// <summary>
/// Options that several commands share, defined once so their names and help read the same everywhere, with the
/// spellings a dotnet user expects: <c>-o|--output</c> (<c>--out</c> kept as an alias), <c>--batch-size</c>
/// (<c>--batch</c> kept), <c>--protocol</c> (compress's old <c>--calib-protocol</c> kept), and <c>-v|--verbosity</c>
/// on every command (<see cref="ToolVerbosity"/>). CommandConventionsTests walks the command tree and holds every
/// command to these names. An option that takes a value with rules of its own is parsed by the option itself
/// (<see cref="Typed{T}"/>), so an action reads typed values and never parses a string again.
/// </summary>
public static class CommonOptions
{
    /// <summary>Where a command writes its result (a folder, or for bench gpu/inference the JSON file).</summary>
    public static Option<T> Output<T>(string description, bool required = false) => new("--output", "-o", "--out")
    {
        Description = description,
        Required = required,
    };

    /// <summary>Samples, windows or requests per forward pass.</summary>
    public static Option<T> BatchSize<T>(string description, Func<T>? defaultValue = null)
    {
        var option = new Option<T>("--batch-size", "--batch") { Description = description };
        if (defaultValue is not null) option.DefaultValueFactory = _ => defaultValue();
        return option;
    }

    /// <summary>How a text becomes a token stream (<see cref="TokenProtocol"/>): stream or plain.</summary>
    public static Option<string> Protocol(string description, params string[] aliases)
    {
        var option = new Option<string>("--protocol", aliases) { Description = description, DefaultValueFactory = _ => TokenProtocol.StreamName };
        option.AcceptOnlyFromAmong(TokenProtocol.StreamName, TokenProtocol.PlainName);
        return option;
    }

    /// <summary>The compression method (<see cref="CompressionMethods.Parse"/>: any case, separators ignored); without a
    /// default, required.</summary>
    public static Option<CompressionMethod> Method(CompressionMethod? defaultValue = null)
    {
        var option = Typed("--method", $"Compression method: {string.Join(", ", CompressionMethods.ValidNames)}", CompressionMethods.Parse,
            defaultValue is { } method ? () => method : null, "method");
        option.Required = defaultValue is null;
        return option;
    }

    /// <summary>Where to compute: auto (CUDA when a CUDA libtorch and GPU are present), cpu or cuda.</summary>
    public static Option<DeviceRequest> Device() =>
        Typed("--device", "auto (CUDA when a CUDA libtorch and GPU are present), cpu or cuda", TorchBackend.ParseDevice, () => DeviceRequest.Auto, "auto|cpu|cuda");

    /// <summary>The compute dtype: fp32 (the default), fp16 or bf16, in the float spellings of <see cref="FactorDtypeNames"/>.</summary>
    public static Option<ScalarType> ComputeDtype(string description) =>
        Typed("--dtype", description, text => FactorDtypes.TryParse(text, out var dtype)
            ? dtype.ToScalarType()
            : throw new LrkException(ErrorCodes.BadArgument, $"unknown --dtype '{text}': use fp32, fp16 or bf16"), () => ScalarType.Float32, "fp32|fp16|bf16");

    /// <summary>Calibration samples N (<see cref="CalibrationNumbers"/>: at least 1).</summary>
    public static Option<int> Samples(string description, int defaultValue) =>
        Typed("--samples", description, text => CalibrationNumbers.ParseCount(text, "--samples", ErrorCodes.BadArgument), () => defaultValue);

    /// <summary>Tokens per calibration sample L (<see cref="CalibrationNumbers"/>: at least 1); null = the sampler's default.</summary>
    public static Option<int?> SeqLen(string description) =>
        Typed<int?>("--seq-len", description, text => CalibrationNumbers.ParseCount(text, "--seq-len", ErrorCodes.BadArgument));

    /// <summary>The calibration seed (<see cref="CalibrationNumbers"/>: 0 to 2147483647, as the MSBuild item's <c>Seed</c>).</summary>
    public static Option<int> Seed(string description) =>
        Typed("--seed", description, text => CalibrationNumbers.ParseSeed(text, "--seed", ErrorCodes.BadArgument), () => CompressionDefaults.Seed);

    /// <summary>
    /// An option whose value <paramref name="parse"/> reads from its last token, while the command line is parsed: the
    /// shared parser of that value (e.g. <see cref="CompressionRatio.Parse"/>), so the CLI accepts exactly what the
    /// MSBuild item and the cache key accept. A rejection is "error LRK####: …" (exit 2) before anything is loaded, and
    /// from lowrank.json or LOWRANK_* it is LRK6002 naming the key (see ToolConfiguration).
    /// </summary>
    /// <param name="helpName">What help shows for the value (an enum's member names otherwise).</param>
    public static Option<T> Typed<T>(string name, string description, Func<string, T> parse, Func<T>? defaultValue = null, string? helpName = null)
    {
        var option = new Option<T>(name)
        {
            Description = description,
            CustomParser = result => Parsed(result, parse),
            Arity = ArgumentArity.ExactlyOne,
            HelpName = helpName,
        };
        if (defaultValue is not null) option.DefaultValueFactory = _ => defaultValue();
        // A custom parser runs only when the value is read: read it while parsing, so a bad value is a parse error.
        return option.Checked(_ => { });
    }

    public static Option<bool> Json() => new("--json") { Description = "Write machine-readable JSON to stdout" };

    public static Option<string?> LibTorch() => new("--libtorch")
    {
        Description = "Folder holding libtorch.so (overrides LOWRANK_LIBTORCH and discovery)",
    };

    /// <summary>
    /// Reads a number the same way under every culture: '.' is the decimal point and nothing else is accepted, so
    /// <c>0,4</c> is an error (LRK6003) instead of 4 (a thousands separator to the default parser) or 0.4 (under de-DE).
    /// </summary>
    public static Option<double> Invariant(this Option<double> option)
    {
        option.CustomParser = result => ParseNumber(result, option.Name) ?? 0;
        return option;
    }

    /// <inheritdoc cref="Invariant(Option{double})"/>
    public static Option<double?> Invariant(this Option<double?> option)
    {
        option.CustomParser = result => ParseNumber(result, option.Name);
        return option;
    }

    /// <summary>The one number of an option's tokens, parsed with <see cref="InvariantNumber.TryParse"/>.</summary>
    private static double? ParseNumber(ArgumentResult result, string name)
    {
        if (result.Tokens.Count == 0) return null;
        var text = result.Tokens[^1].Value;
        if (InvariantNumber.TryParse(text, out var value)) return value;
        result.AddError($"{ErrorCodes.BadArgument}: {name} '{text}' is not a number; write it with a '.' decimal point and no thousands separator (e.g. 0.4)");
        return null;
    }

    /// <summary>
    /// Checks an option's value while the command line is parsed, with the same check (and error code) the engine
    /// applies: a bad value on the command line is then "error LRK####: …" (exit 2) before anything is loaded, and a bad
    /// value from lowrank.json or LOWRANK_* is reported as LRK6002 naming the key (see ToolConfiguration).
    /// </summary>
    public static T Checked<T>(this T option, Action<object?> check) where T : Option
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 0) return;
            try
            {
                check(result.GetValueOrDefault<object?>());
            }
            catch (LrkException e)
            {
                result.AddError($"{e.Code}: {e.Message}");
            }
            catch (InvalidOperationException)
            {
                // The value did not convert; the parser reports that itself.
            }
        });
        return option;
    }

    /// <summary>
    /// A <c>CustomParser</c> body that parses the option's last token with <paramref name="parse"/>; a rejection becomes
    /// "LRK####: …" like <see cref="Checked"/> (see <see cref="Typed{T}"/>).
    /// </summary>
    public static T Parsed<T>(ArgumentResult result, Func<string, T> parse)
    {
        if (result.Tokens.Count == 0) return default!;
        try
        {
            return parse(result.Tokens[^1].Value);
        }
        catch (LrkException e)
        {
            result.AddError($"{e.Code}: {e.Message}");
            return default!;
        }
    }
}
