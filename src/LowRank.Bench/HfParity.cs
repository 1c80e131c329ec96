using System.Text.Json.Nodes;
using LowRank.Models;
using LowRank.Torch;
using static TorchSharp.torch;

namespace LowRank.Bench;

/// <summary>One fixture's comparison of our logits with the transformers reference (reference.json beside the model).</summary>
public sealed record ParityResult(string Fixture, string Architecture, long[] Shape, double MaxAbsDiff, double MaxAbsReference);

/// <summary>
/// Compares our forward pass with reference logits recorded by HF transformers (tools/device/make_parity_fixtures.py):
/// every subfolder of <c>tests/fixtures/parity</c> holds a model and <c>reference.json</c> with input ids and fp32 logits.
/// The tests run it on the CPU; <c>dotnet lowrank bench parity --device cuda</c> runs the same check on a GPU.
/// </summary>
public static class HfParity
{
    public static IReadOnlyList<ParityResult> CheckAll(string fixturesFolder, DeviceRequest device)
    {
        if (!Directory.Exists(fixturesFolder))
            throw new LrkException(ErrorCodes.ModelNotFound, $"no parity fixtures at {fixturesFolder}");
        return Directory.EnumerateDirectories(fixturesFolder).Order(StringComparer.Ordinal)
            .Where(d => File.Exists(Path.Combine(d, "reference.json")))
            .Select(d => Check(d, device)).ToArray();
    }

    public static ParityResult Check(string fixture, DeviceRequest device)
    {
        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "reference.json")))!;
        var ids = reference["input_ids"]!.AsArray().Select(row => row!.AsArray().Select(v => v!.GetValue<long>()).ToArray()).ToArray();
        var shape = reference["shape"]!.AsArray().Select(v => v!.GetValue<long>()).ToArray();
        var expected = reference["logits"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        using var loaded = ModelLoader.Load(fixture, new ModelLoadOptions { Device = device, LoadTokenizer = false });
        using var scope = NewDisposeScope();
        var input = tensor(ids.SelectMany(r => r).ToArray(), [ids.Length, ids[0].Length]).to(loaded.Model.Device);
        var logits = loaded.Model.Logits(input).to(float32).cpu();
        if (!logits.shape.SequenceEqual(shape))
            throw new LrkException(ErrorCodes.BadCheckpoint,
                $"{Path.GetFileName(fixture)}: our logits are [{string.Join(", ", logits.shape)}], the reference is [{string.Join(", ", shape)}]");
        var want = tensor(expected, shape);
        var diff = (logits - want).abs().max().item<float>();
        return new ParityResult(Path.GetFileName(fixture), loaded.Config.Architecture, shape, diff, want.abs().max().item<float>());
    }
}
