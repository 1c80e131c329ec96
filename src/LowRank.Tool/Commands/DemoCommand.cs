using System.CommandLine;
using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Data;
using LowRank.Evaluation;
using LowRank.Jobs;
using LowRank.Torch;

namespace LowRank.Tool.Commands;

/// <summary>
/// <c>dotnet lowrank demo</c>: the README's first command. Compresses the built-in model (llama-moby) with SVD-LLM,
/// calibrating on the first 90% of Moby-Dick (the npm corpus eng/setup.sh installs) and measuring perplexity before
/// and after on the held-out last 10%, exactly as the model was trained and evaluated; writes the artifact and
/// prints where its report is. Needs no network and nothing outside the checkout (or the installed tool) but the
/// npm corpora. Every default is an ordinary <c>compress</c> option; this command only chooses them.
/// </summary>
public static class DemoCommand
{
    public const string Corpus = "npm:moby-dick";
    public const double CalibrationFraction = 0.9;

    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Model folder (default: the built-in llama-moby)" };
        var method = CommonOptions.Method(CompressionMethod.SvdLlm);
        var ratio = new Option<double>("--ratio") { Description = "Fraction of the block linears' parameters to REMOVE, in (0, 1)", DefaultValueFactory = _ => 0.4 }
            .Invariant().Checked(value => CompressionRatio.Validate((double)value!));
        var samples = CommonOptions.Samples("Calibration samples", CompressionDefaults.Samples);
        var seed = CommonOptions.Seed("Seed of the calibration sampler");
        var output = CommonOptions.Output<string?>("Output folder (default: artifacts/demo/<model>-<method>-<ratio>, replaced on every run)");
        var force = new Option<bool>("--force") { Description = "Replace --output if it exists" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var libTorch = CommonOptions.LibTorch();
        var command = new Command("demo", "Compress the built-in model with SVD-LLM on Moby-Dick (npm, first 90%), evaluate it before and after on the held-out 10%, and print the report path.")
        {
            model, method, ratio, samples, seed, output, force, device, json, libTorch,
        };
        command.SetAction((parse, token) =>
        {
            var folder = parse.GetValue(model) ?? BuiltInModels.DefaultFolder();
            var methodValue = parse.GetValue(method);
            var ratioValue = parse.GetValue(ratio);
            var explicitOut = parse.GetValue(output);
            var outFolder = explicitOut ?? Path.Combine("artifacts", "demo",
                $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)))}-{methodValue.Name().ToLowerInvariant()}-{ratioValue.ToString("0.###", null)}");

            ToolProgress.Progress("data", $"reading {Corpus} (installed by eng/setup.sh)");
            var cut = TextSplit.Cut(Corpus, CalibrationFraction);
            var result = CompressionJob.Run(new CompressionJobOptions
            {
                Model = folder,
                Out = outFolder,
                Compression = new CompressionOptions { Method = methodValue, Ratio = ratioValue },
                Calibration = new CalibrationSpec { Text = Corpus, ByteEnd = cut, Samples = parse.GetValue(samples), Seed = parse.GetValue(seed) },
                Evaluation = new TextPerplexitySpec { Text = Corpus, ByteStart = cut },
                Device = parse.GetValue(device),
                LibTorch = parse.GetValue(libTorch),
                Force = explicitOut is null || parse.GetValue(force),
            }, ToolProgress.Reporter, token);
            ToolProgress.Result(CompressCommand.Summary(result), parse.GetValue(json), () =>
            {
                CompressCommand.PrintSummary(result);
                Console.WriteLine();
                Console.WriteLine($"next: dotnet lowrank verify {result.Out}");
                Console.WriteLine($"      dotnet lowrank export {result.Out} --dense -o {result.Out}-dense");
            });
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }
}
