using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace LowRank.Tests.TestSupport;

/// <summary>
/// The golden values of ../shared/models/stories260K, read from its README at test time (they come from llama2.c's
/// reference C implementation; nothing from ../shared is copied into the repository).
/// </summary>
public sealed partial class Stories260K
{
    public const string RelativePath = "../shared/models/stories260K";

    public static string Folder => RepoPaths.Stories260K;
    public static string Checkpoint => Path.Combine(Folder, "stories260K.bin");
    public static string Tokenizer => Path.Combine(Folder, "tok512.bin");

    public required string GreedyText { get; init; }
    public required double[] FirstLogits { get; init; }
    public required int ArgmaxId { get; init; }
    public required double ArgmaxLogit { get; init; }
    public required int[] OnceUponATimeIds { get; init; }
    public required double NllSum { get; init; }

    public static Stories260K ReadGoldens()
    {
        var readme = File.ReadAllText(Path.Combine(Folder, "README.md"));
        var greedy = GreedyPattern().Match(readme);
        var logits = LogitsPattern().Match(readme);
        var argmax = ArgmaxPattern().Match(readme);
        var encode = EncodePattern().Match(readme);
        var nll = NllPattern().Match(readme);
        Assert.True(greedy.Success && logits.Success && argmax.Success && encode.Success && nll.Success, "the stories260K README's golden values could not be parsed");
        return new Stories260K
        {
            GreedyText = JsonSerializer.Deserialize<string>(greedy.Groups[1].Value)!,
            FirstLogits = Regex.Split(logits.Groups[1].Value.Trim(), @"\s+").Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray(),
            ArgmaxId = int.Parse(argmax.Groups[1].Value, CultureInfo.InvariantCulture),
            ArgmaxLogit = double.Parse(argmax.Groups[2].Value, CultureInfo.InvariantCulture),
            OnceUponATimeIds = encode.Groups[1].Value.Split(',').Select(v => int.Parse(v.Trim(), CultureInfo.InvariantCulture)).ToArray(),
            NllSum = double.Parse(nll.Groups[1].Value, CultureInfo.InvariantCulture),
        };
    }

    [GeneratedRegex("""temperature 0:\s*\n\s*("(?:[^"\\]|\\.)*")""")]
    private static partial Regex GreedyPattern();

    [GeneratedRegex(@"ids 0\.\.7:\s*([-0-9.\s]+?);")]
    private static partial Regex LogitsPattern();

    [GeneratedRegex(@"argmax id (\d+) with logit (-?[0-9]+\.[0-9]+)")]
    private static partial Regex ArgmaxPattern();

    [GeneratedRegex(@"encode\(""Once upon a time"", bos\) = \[([0-9, ]+)\]")]
    private static partial Regex EncodePattern();

    [GeneratedRegex(@"= ([0-9.]+) nats")]
    private static partial Regex NllPattern();
}
