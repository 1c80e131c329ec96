using System.CommandLine;
using LowRank.Models;

namespace LowRank.Tool.Commands;

public static class InspectCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A model folder, a .safetensors file, or a Hugging Face id (org/name[@revision]) in the local HF cache" };
        var json = CommonOptions.Json();
        var command = new Command("inspect", "Show a model's architecture, key config values, parameter counts per module type, dtypes and files (reads headers only).")
        {
            model, json,
        };
        command.SetAction((parse, _) =>
        {
            var report = ModelInspector.Inspect(parse.GetValue(model)!);
            if (parse.GetValue(json)) Output.WriteJson(report);
            else Write(report);
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static void Write(ModelInspection r)
    {
        Console.WriteLine($"model         {r.Folder}");
        Console.WriteLine($"architecture  {(r.Architecture is null ? "unknown (no config.json)" : $"{r.Architecture} (family {r.Family})")}");
        if (r.Config is { } c)
        {
            Console.WriteLine($"shape         hidden {c.HiddenSize}, intermediate {c.IntermediateSize}, layers {c.NumLayers}, " +
                $"heads {c.NumHeads} (kv {c.NumKvHeads}, head dim {c.HeadDim}), vocab {c.VocabSize}, positions {c.MaxPositions}");
            var rope = r.Family is nameof(ModelFamily.Opt) or nameof(ModelFamily.Gpt2) ? "" : $", rope theta {c.RopeTheta:G}" +
                (c.RopeScaling is { } s ? $" (scaling {s.Type} ×{s.Factor:G})" : "");
            var window = c.SlidingWindow is { } w ? $", sliding window {w}" : "";
            Console.WriteLine($"settings      act {c.HiddenAct}, norm eps {c.NormEps.ToString("G", null).ToLowerInvariant()}{rope}{window}, " +
                $"tied embeddings {(c.TieWordEmbeddings ? "yes" : "no")}, config dtype {c.TorchDtype}");
        }
        Console.WriteLine();
        var nameWidth = Math.Max(24, r.Groups.Select(g => g.Name.Length).DefaultIfEmpty(0).Max() + 2);
        Console.WriteLine($"{"module".PadRight(nameWidth)}{"tensors",8}{"parameters",16}{"share",9}");
        foreach (var g in r.Groups)
            Console.WriteLine($"{g.Name.PadRight(nameWidth)}{g.Tensors,8}{g.Parameters,16:N0}{Share(g.Parameters, r.TotalParameters),9}");
        Console.WriteLine($"{"total".PadRight(nameWidth)}{r.TotalTensors,8}{r.TotalParameters,16:N0}");
        Console.WriteLine();
        Console.WriteLine($"{"dtype".PadRight(nameWidth)}{"tensors",8}{"parameters",16}{"size",12}");
        foreach (var d in r.Dtypes)
            Console.WriteLine($"{d.Dtype.PadRight(nameWidth)}{d.Tensors,8}{d.Parameters,16:N0}{Size(d.Bytes),12}");
        Console.WriteLine();
        Console.WriteLine($"{(r.Sharded ? "files (sharded)" : "file").PadRight(nameWidth)}{"tensors",8}{"size",16}");
        foreach (var f in r.Files)
            Console.WriteLine($"{f.Name.PadRight(nameWidth)}{f.Tensors,8}{Size(f.Bytes),16}");
        if (r.Metadata.Count > 0)
            Console.WriteLine($"{Environment.NewLine}metadata      {string.Join(", ", r.Metadata.Select(m => $"{m.Key}={m.Value}"))}");
    }

    private static string Share(long part, long total) => total == 0 ? "" : $"{100.0 * part / total:F1} %";

    private static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / (double)(1L << 10):F1} KiB",
        _ => $"{bytes} B",
    };
}
