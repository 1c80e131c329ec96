using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LowRank.Models;

namespace LowRank.Artifacts;

/// <summary>What an artifact's card states, gathered by the writer from the run.</summary>
public sealed record ModelCardFacts
{
    /// <summary>The artifact folder's name (the card's title).</summary>
    public required string Name { get; init; }

    /// <summary>The source as given (a folder, a checkpoint file, an HF cache snapshot).</summary>
    public required string SourcePath { get; init; }

    public required ModelFamily Family { get; init; }
    public required LowRankSection Section { get; init; }
    public required ManifestTool Tool { get; init; }
    public required SourceNotices Notices { get; init; }

    /// <summary>The hub id of the source (<c>org/name</c>) when it is known (<see cref="ModelCard.BaseModelId"/>).</summary>
    public string? BaseModel { get; init; }

    public ManifestCalibration? Calibration { get; init; }
    public int? Seed { get; init; }

    /// <summary>ppl_before / ppl_after when the run measured them.</summary>
    public JsonObject? Metrics { get; init; }

    /// <summary>How the metrics were measured (text, window length, scored tokens).</summary>
    public JsonNode? Evaluation { get; init; }
}

/// <summary>
/// The artifact's <c>README.md</c>, a Hugging Face model card: YAML front matter the Hub reads (<c>base_model</c> when
/// the source's hub id is known, the source card's <c>license</c>, <c>library_name</c>, <c>pipeline_tag</c>, tags) plus a
/// <c>lowrank</c> block with the method, ratio, calibration and perplexity before/after, then a body that says what was
/// done, how to load the model (transformers with <c>trust_remote_code=True</c>, the dense export, .NET) and which
/// licence and notice files came along (<see cref="SourceNotices"/>).
/// </summary>
public static partial class ModelCard
{
    public const string FileName = "README.md";

    /// <summary>The source's hub id: from an HF cache path (<c>…/models--org--name/snapshots/&lt;commit&gt;</c>), else from
    /// the config's <c>_name_or_path</c> when that is an <c>org/name</c> id rather than a path; null when neither says.</summary>
    public static string? BaseModelId(string sourcePath, JsonObject? sourceConfig)
    {
        var match = HubCacheSnapshot().Match(Path.GetFullPath(sourcePath).Replace('\\', '/'));
        if (match.Success) return $"{match.Groups["org"].Value}/{match.Groups["name"].Value}";
        return sourceConfig?["_name_or_path"] is JsonValue v && v.TryGetValue<string>(out var name) && HubId().IsMatch(name) && !Path.Exists(name) ? name : null;
    }

    public static string Render(ModelCardFacts facts)
    {
        var s = facts.Section;
        var classes = HuggingFaceClasses.Of(facts.Family);
        var before = Metric(facts.Metrics, "ppl_before");
        var after = Metric(facts.Metrics, "ppl_after");
        var protocol = facts.Calibration?.Protocol as JsonObject;
        var evaluatedOn = Text(facts.Evaluation?["text"], "source") ?? Text(facts.Evaluation?["text"], "description");
        var baseName = facts.BaseModel ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(facts.SourcePath));

        var yaml = new StringBuilder();
        yaml.AppendLine("---");
        if (facts.BaseModel is { } id) yaml.AppendLine($"base_model: {Quote(id)}");
        if (facts.Notices.License is { } license) yaml.AppendLine($"license: {Quote(license)}");
        if (facts.Notices.LicenseName is { } licenseName) yaml.AppendLine($"license_name: {Quote(licenseName)}");
        if (facts.Notices.LicenseLink is { } licenseLink) yaml.AppendLine($"license_link: {Quote(licenseLink)}");
        yaml.AppendLine("library_name: transformers");
        yaml.AppendLine("pipeline_tag: text-generation");
        yaml.AppendLine("tags:");
        foreach (var tag in new[] { "lowrank-build", "low-rank", s.Method, classes.ModelType, "custom_code" }.Distinct(StringComparer.Ordinal)) yaml.AppendLine($"- {Quote(tag)}");
        yaml.AppendLine("lowrank:");
        yaml.AppendLine($"  method: {Quote(s.Method)}");
        yaml.AppendLine($"  ratio_definition: {Quote("fraction of parameters removed")}");
        yaml.AppendLine($"  requested_ratio: {Number(s.RequestedRatio)}");
        yaml.AppendLine($"  achieved_ratio: {Number(Math.Round(s.AchievedRatio, 6))}");
        yaml.AppendLine($"  achieved_ratio_model: {Number(Math.Round(s.AchievedRatioModel, 6))}");
        yaml.AppendLine($"  factor_dtype: {Quote(s.FactorDtype.TorchName())}");
        if (s.Quantization?.Common is { } format) yaml.AppendLine($"  quantization: {Quote(format.ToString())}");
        yaml.AppendLine($"  parameters_before: {s.Parameters.ModelBefore}");
        yaml.AppendLine($"  parameters_after: {s.Parameters.ModelAfter}");
        yaml.AppendLine($"  calibration: {(facts.Calibration is { } c ? Quote(c.Source) : "null")}");
        if (facts.Calibration is { } calibration) yaml.AppendLine($"  calibration_sha256: {Quote(calibration.SourceSha256)}");
        if (Integer(protocol, "samples") is { } samples) yaml.AppendLine($"  calibration_samples: {samples}");
        if (Integer(protocol, "seq_len") is { } seqLen) yaml.AppendLine($"  calibration_seq_len: {seqLen}");
        if (facts.Seed is { } seed) yaml.AppendLine($"  seed: {seed}");
        yaml.AppendLine($"  perplexity_before: {(before is { } b ? Number(b) : "null")}");
        yaml.AppendLine($"  perplexity_after: {(after is { } a ? Number(a) : "null")}");
        if (evaluatedOn is not null) yaml.AppendLine($"  perplexity_text: {Quote(evaluatedOn)}");
        yaml.AppendLine($"  tool: {Quote($"{facts.Tool.Name} {facts.Tool.Version}")}");
        yaml.AppendLine("---");

        var md = new StringBuilder(yaml.ToString());
        md.AppendLine();
        md.AppendLine($"# {facts.Name}");
        md.AppendLine();
        md.AppendLine($"`{baseName}` ({classes.Architecture}) compressed by LowRank.Build with **{s.Method}**: each factorised linear W [out, in] " +
            "is stored as two matrices A [out, k] and B [k, in] with W ≈ A·B.");
        md.AppendLine();
        md.AppendLine("| | |");
        md.AppendLine("|---|---|");
        md.AppendLine($"| base model | {(facts.BaseModel is { } hub ? $"[{hub}](https://huggingface.co/{hub})" : $"`{baseName}`")} |");
        md.AppendLine($"| method | {s.Method} |");
        md.AppendLine($"| ratio (parameters removed) | requested {Number(s.RequestedRatio)}; achieved {s.AchievedRatio.ToString("F4", CultureInfo.InvariantCulture)} of the compressed linears, " +
            $"{s.AchievedRatioModel.ToString("F4", CultureInfo.InvariantCulture)} of the model |");
        md.AppendLine($"| parameters | {s.Parameters.ModelBefore.ToString("N0", CultureInfo.InvariantCulture)} → {s.Parameters.ModelAfter.ToString("N0", CultureInfo.InvariantCulture)} |");
        var ranks = s.TruncationRanks.Values.ToList();
        md.AppendLine($"| factors | {s.FactorDtype.TorchName()}, {ranks.Count} linears factorised" +
            (ranks.Count > 0 ? $" (rank {ranks.Min()}–{ranks.Max()})" : "") + (s.Quantization?.Common is { } q ? $"; stored as {q} ({s.Quantization.Quantizer.ToString().ToLowerInvariant()})" : "") + " |");
        md.AppendLine($"| calibration | {(facts.Calibration is { } cal ? Escape(cal.Source) + (Integer(protocol, "samples") is { } n && Integer(protocol, "seq_len") is { } l ? $"; {n} × {l} tokens" : "") + (facts.Seed is { } sd ? $", seed {sd}" : "") : "none (the method needs no calibration text)")} |");
        md.AppendLine($"| perplexity | {(before is { } pb && after is { } pa ? $"{pb.ToString("F4", CultureInfo.InvariantCulture)} → {pa.ToString("F4", CultureInfo.InvariantCulture)}" + (evaluatedOn is null ? "" : $" on {Escape(evaluatedOn)}") : "not measured (compress without --eval)")} |");
        md.AppendLine($"| tool | {Escape($"{facts.Tool.Name} {facts.Tool.Version}")} |");
        md.AppendLine();
        md.AppendLine("## How to load");
        md.AppendLine();
        md.AppendLine("Python (torch and transformers 4.40 or later):");
        md.AppendLine();
        md.AppendLine("```python");
        md.AppendLine("from transformers import AutoModelForCausalLM");
        md.AppendLine($"model = AutoModelForCausalLM.from_pretrained(\"PATH/TO/{facts.Name}\", trust_remote_code=True)");
        md.AppendLine("```");
        md.AppendLine();
        md.AppendLine($"`trust_remote_code=True` runs `{HuggingFaceRemoteCode.ModelingFileName}` from this folder (torch and transformers only; read it first). " +
            $"It builds `{classes.LowRankArchitecture}`, {classes.Architecture} with every factorised linear as two `nn.Linear` of rank k, loads every tensor, and fails if one is missing or left over. " +
            $"Without it transformers stops with its \"custom code\" error, because no stock class claims the model_type `{classes.LowRankModelType}`; " +
            $"it never fills the factorised linears with random weights. Do not call `{classes.Architecture}.from_pretrained` on this folder directly: " +
            "that class ignores `auto_map` and would random-initialise every factorised linear with only a warning.");
        md.AppendLine();
        md.AppendLine($"A plain checkpoint for any tool: `dotnet lowrank export {facts.Name} --dense --out DENSE` (or `--onnx` for ONNX Runtime). " +
            $".NET: `dotnet lowrank eval {facts.Name}` and `dotnet lowrank generate {facts.Name}` read this folder as it is; `dotnet lowrank verify {facts.Name}` checks every file " +
            $"against `{ArtifactFormat.ManifestFileName}`, which also records how the model was made.");
        md.AppendLine();
        md.AppendLine("## Licence");
        md.AppendLine();
        if (facts.Notices.Files.Count > 0)
            md.AppendLine($"This model is a derivative of `{baseName}`; the source's licence and notice files are included unchanged: " +
                string.Join(", ", facts.Notices.Files.Select(f => $"`{f}`")) + ". Their terms apply to this model.");
        else
            md.AppendLine($"The source folder held no licence or notice file: check the terms of `{baseName}` before you share this model.");
        if (facts.Notices.License is { } declared)
        {
            md.AppendLine();
            md.AppendLine($"The source's card declares the licence `{declared}`" + (facts.Notices.LicenseName is { } ln ? $" ({ln})" : "") +
                (facts.Notices.LicenseLink is { } link ? $", {link}" : "") + ".");
        }
        return md.ToString();
    }

    // Numbers are read from their JSON text: a value built in code (an int boxed in a JsonValue) answers
    // TryGetValue only for its own CLR type, a parsed one for any.
    private static double? Metric(JsonObject? metrics, string key) =>
        metrics?[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            && double.TryParse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x) ? x : null;

    private static long? Integer(JsonObject? json, string key) =>
        json?[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            && long.TryParse(v.ToJsonString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var x) ? x : null;

    private static string? Text(JsonNode? json, string key) =>
        json is JsonObject o && o[key] is JsonValue v && v.TryGetValue<string>(out var text) ? text : null;

    /// <summary>A YAML double-quoted scalar: JSON's string escapes are a subset of YAML's.</summary>
    private static string Quote(string text) => JsonSerializer.Serialize(text, YamlStrings);

    private static readonly JsonSerializerOptions YamlStrings = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Text for a Markdown table cell.</summary>
    private static string Escape(string text) => text.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);

    [GeneratedRegex(@"/models--(?<org>[^/]+?)--(?<name>[^/]+)/snapshots/[^/]+/?$")]
    private static partial Regex HubCacheSnapshot();

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
    private static partial Regex HubId();
}
