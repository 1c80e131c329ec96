using System.Text;
using System.Text.RegularExpressions;
using LowRank.Cache;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace LowRank.Build.Tasks;

/// <summary>
/// Turns cached entries into build outputs: one item per entry file (the cache file itself, with
/// <c>TargetPath</c> <c>models/&lt;OutputName&gt;/…</c>), which the targets add as None with
/// CopyToOutputDirectory/CopyToPublishDirectory; and, per model, a generated C# class with the relative paths
/// and SHA-256s, rewritten only when its text changes so CoreCompile stays up to date.
/// </summary>
public sealed partial class EmitCompressedModelOutputs : LowRankTask, IIncrementalTask
{
    [Required] public ITaskItem[] ResolvedModels { get; set; } = [];
    /// <summary>Folder under the output directory that holds the models (property LowRankModelsFolder, default "models").</summary>
    [Required] public string ModelsFolder { get; set; } = "";
    [Required] public string GeneratedDirectory { get; set; } = "";
    public string? RootNamespace { get; set; }
    public bool FailIfNotIncremental { get; set; }

    [Output] public ITaskItem[] ModelFiles { get; private set; } = [];
    [Output] public ITaskItem[] GeneratedFiles { get; private set; } = [];

    protected override void ExecuteCore()
    {
        var files = new List<ITaskItem>();
        var generated = new List<ITaskItem>();
        foreach (var model in ResolvedModels)
        {
            var at = ItemLocation.FromMetadata(model, BuildEngine.ProjectFileOfTaskNode);
            var cache = new ModelCache(model.GetMetadata("CacheRoot"));
            var key = model.GetMetadata(MetadataNames.Key);
            EntryUse.HoldForBuild(BuildEngine, cache, key);
            var entry = cache.TryGet(key);
            if (entry is null)
            {
                LogItemError(Log, at, ErrorCodes.NotCached, $"{model.ItemSpec} (key {key[..12]}) is not in the cache {cache.Root} and was not compressed in this build (LowRankCompressOnMiss is false, or compression failed)");
                continue;
            }
            ModelCache.Touch(entry);
            var outputName = model.GetMetadata(MetadataNames.OutputName);
            var prefix = OutputPrefix(ModelsFolder, outputName);
            files.AddRange(FileItems(entry, prefix, outputName));
            if (model.GetMetadata(MetadataNames.GenerateClass) == "true") // as ResolveCompressedModels resolved it
            {
                var path = Path.Combine(GeneratedDirectory, outputName + ".g.cs");
                WriteIfChanged(path, ModelClassSource(model, entry, prefix), at);
                generated.Add(new TaskItem(path));
            }
        }
        ModelFiles = files.ToArray();
        GeneratedFiles = generated.ToArray();
    }

    /// <summary>Where a model's files go under bin/ and publish/: <c>&lt;ModelsFolder&gt;/&lt;OutputName&gt;/</c>.</summary>
    internal static string OutputPrefix(string modelsFolder, string outputName)
    {
        var folder = modelsFolder.Trim().TrimEnd('/', '\\');
        return (folder.Length == 0 ? "" : folder + "/") + outputName + "/";
    }

    /// <summary>One None-to-be item per entry file: the read-only cache file itself, copied (linked) to <paramref name="prefix"/> in bin/ and publish/.</summary>
    internal static IEnumerable<ITaskItem> FileItems(CacheEntry entry, string prefix, string outputName)
    {
        foreach (var file in entry.Record.Files)
        {
            var item = new TaskItem(entry.FilePath(file));
            var targetPath = (prefix + file.Path).Replace('/', Path.DirectorySeparatorChar);
            item.SetMetadata("TargetPath", targetPath);
            item.SetMetadata("Link", targetPath);
            item.SetMetadata("CopyToOutputDirectory", "PreserveNewest");
            item.SetMetadata("CopyToPublishDirectory", "PreserveNewest");
            item.SetMetadata("Visible", "false");
            item.SetMetadata("Sha256", file.Sha256);
            item.SetMetadata("CompressedModel", outputName);
            item.SetMetadata(MetadataNames.Key, entry.Key);
            yield return item;
        }
    }

    private void WriteIfChanged(string path, string text, ItemLocation at)
    {
        if (File.Exists(path) && File.ReadAllText(path) == text) return;
        if (FailIfNotIncremental)
        {
            LogItemError(Log, at, ErrorCodes.NotCached, $"{path} is out of date and would be rewritten");
            return;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(temp, text, new UTF8Encoding(false));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>
    /// <c>OutputName</c> "Stories.Small" gives namespace <c>Stories</c>, class <c>Small</c>; a name without dots gives
    /// class &lt;name&gt; in <c>$(RootNamespace)</c> (or <c>CompressedModels</c> when there is none).
    /// </summary>
    internal string ModelClassSource(ITaskItem model, CacheEntry entry, string prefix)
    {
        var outputName = model.GetMetadata(MetadataNames.OutputName);
        var parts = outputName.Split('.').Select(Identifier).ToArray();
        var className = parts[^1];
        var ns = parts.Length > 1 ? string.Join(".", parts[..^1]) : (string.IsNullOrWhiteSpace(RootNamespace) ? "CompressedModels" : RootNamespace.Trim());
        var code = new StringBuilder();
        code.AppendLine("// <auto-generated/> by LowRank.Build.Tasks from the CompressedModel item for " + Literal(model.ItemSpec)[1..^1] + ".");
        code.AppendLine("#nullable enable");
        code.AppendLine($"namespace {ns}");
        code.AppendLine("{");
        code.AppendLine($"    /// <summary>The compressed model '{outputName}' copied next to the application (cache key {entry.Key[..12]}).</summary>");
        code.AppendLine($"    [global::System.CodeDom.Compiler.GeneratedCode(\"LowRank.Build.Tasks\", \"{typeof(EmitCompressedModelOutputs).Assembly.GetName().Version}\")]");
        code.AppendLine($"    internal static partial class {className}");
        code.AppendLine("    {");
        code.AppendLine($"        public const string Name = {Literal(outputName)};");
        code.AppendLine($"        public const string Method = {Literal(model.GetMetadata(MetadataNames.Method))};");
        // ResolveCompressedModels wrote the parsed ratio back in its round-trip invariant spelling (CompressionRatio.Format),
        // which is also a C# double literal: copied, not parsed again.
        code.AppendLine($"        public const double Ratio = {model.GetMetadata(MetadataNames.Ratio)};");
        code.AppendLine($"        public const string CacheKey = {Literal(entry.Key)};");
        code.AppendLine("        /// <summary>The model folder relative to the application's base directory.</summary>");
        code.AppendLine($"        public const string RelativeDirectory = {Literal(prefix.TrimEnd('/'))};");
        code.AppendLine("        public static string Directory => global::System.IO.Path.Combine(global::System.AppContext.BaseDirectory, RelativeDirectory);");
        var formats = ModelFormats.Parse(model.GetMetadata(MetadataNames.Formats));
        code.AppendLine($"        /// <summary>What the folder holds: safetensors (the artifact), onnx, or safetensors;onnx.</summary>");
        code.AppendLine($"        public const string Formats = {Literal(formats.Canonical)};");
        if (formats.OnnxRelativeFolder is { } onnx)
        {
            code.AppendLine("        /// <summary>The ONNX folder (model.onnx, genai_config.json, tokenizer files) for ONNX Runtime and ONNX Runtime GenAI.</summary>");
            code.AppendLine(onnx.Length == 0
                ? "        public static string OnnxDirectory => Directory;"
                : $"        public static string OnnxDirectory => global::System.IO.Path.Combine(Directory, {Literal(onnx)});");
        }
        code.AppendLine("        /// <summary>Every file of the model: path relative to <see cref=\"Directory\"/>, size in bytes, SHA-256.</summary>");
        code.AppendLine("        public static readonly (string Path, long Size, string Sha256)[] Files =");
        code.AppendLine("        {");
        foreach (var file in entry.Record.Files) code.AppendLine($"            ({Literal(file.Path)}, {file.Size}L, {Literal(file.Sha256)}),");
        code.AppendLine("        };");
        code.AppendLine("    }");
        code.AppendLine("}");
        return code.ToString();
    }

    private static string Literal(string text) => "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    private static string Identifier(string part)
    {
        var cleaned = NotIdentifier().Replace(part, "_");
        return cleaned.Length == 0 || char.IsDigit(cleaned[0]) ? "_" + cleaned : cleaned;
    }

    [GeneratedRegex(@"[^A-Za-z0-9_]")]
    private static partial Regex NotIdentifier();
}
