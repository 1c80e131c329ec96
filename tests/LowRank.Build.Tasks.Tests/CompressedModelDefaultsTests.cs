using System.Collections;
using System.Reflection;
using System.Xml.Linq;
using LowRank.Compression;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace LowRank.Build.Tasks.Tests;

/// <summary>
/// The <c>CompressedModel</c> defaults in the props files (the package's and LowRank.Sdk's) are the knob list the tasks
/// read, and their values are the request's defaults: a metadata default nobody reads, a name <see cref="MetadataNames"/>
/// lacks, or a value that drifts from <see cref="CompressionDefaults"/> fails here.
/// </summary>
public sealed class CompressedModelDefaultsTests : IDisposable
{
    private static readonly string[] PropsFiles =
    [
        Path.Combine(RepoPaths.Root, "src", "LowRank.Build.Tasks", "build", "LowRank.Build.Tasks.props"),
        Path.Combine(RepoPaths.Root, "sdk", "LowRank.Sdk", "Sdk", "Sdk.props"),
    ];

    private readonly TempFolder temp = new("lowrank-defaults");

    public void Dispose() => temp.Dispose();

    /// <summary>Every (file, metadata, default) under an ItemDefinitionGroup's CompressedModel.</summary>
    private static List<(string File, string Name, string Value)> Defaults() =>
        PropsFiles.SelectMany(file => XDocument.Load(file).Descendants()
                .Where(e => e.Name.LocalName == "CompressedModel" && e.Parent?.Name.LocalName == "ItemDefinitionGroup")
                .SelectMany(group => group.Elements())
                .Select(e => (Path.GetFileName(file), e.Name.LocalName, e.Value.Trim())))
            .ToList();

    /// <summary>The package's defaults as an item gets them (properties such as $(LowRankDevice) unset: empty).</summary>
    private static TaskItem ItemWithPackageDefaults()
    {
        var item = new TaskItem("model");
        foreach (var (file, name, value) in Defaults().Where(d => d.File == "LowRank.Build.Tasks.props"))
            item.SetMetadata(name, value.StartsWith("$(", StringComparison.Ordinal) ? "" : value);
        return item;
    }

    [Fact]
    public void Every_default_is_a_metadata_name_that_the_resolve_task_reads()
    {
        var defaults = Defaults();
        Assert.True(defaults.Count >= 15, string.Join(", ", defaults.Select(d => d.Name)));
        var package = defaults.Where(d => d.File == "LowRank.Build.Tasks.props").Select(d => d.Name).ToList();
        Assert.Equal(package.Count, package.Distinct(StringComparer.Ordinal).Count());
        // LowRank.Sdk only overrides what the package declares.
        Assert.Empty(defaults.Where(d => d.File == "Sdk.props").Select(d => d.Name).Except(package));

        var names = typeof(MetadataNames).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(string)).Select(f => (string)f.GetRawConstantValue()!).ToHashSet(StringComparer.Ordinal);
        foreach (var name in package) Assert.True(names.Contains(name), $"{name} (a CompressedModel default) is not in MetadataNames");

        temp.Write("model/config.json", """{"architectures": ["LlamaForCausalLM"]}""");
        temp.Write("model/model.safetensors", "not really weights: the task only digests the files");
        var item = new RecordingItem(ItemWithPackageDefaults());
        var engine = new TestBuildEngine(temp.Write("app.csproj", """<Project><ItemGroup><CompressedModel Include="model" /></ItemGroup></Project>"""));
        var task = TestResolveTask.Create(engine, item, temp);
        Assert.True(task.Execute(), string.Join("; ", engine.Errors.Select(e => $"{e.Code}: {e.Message}")));
        Assert.Empty(package.Except(item.Read));
        Assert.Equal("true", Assert.Single(task.ResolvedModels).GetMetadata(MetadataNames.GenerateClass));
    }

    [Fact]
    public void Default_values_are_the_requests_defaults()
    {
        var request = ResolveCompressedModels.ParseRequest(ItemWithPackageDefaults());
        var expected = new CompressionRequest { Method = CompressionDefaults.Method, Ratio = CompressionDefaults.Ratio };
        Assert.Equal(expected.ToArguments(), request.ToArguments());
        Assert.Equal(expected.KeyFields("sha256:aa", null, "1.0").ToJsonString(), request.KeyFields("sha256:aa", null, "1.0").ToJsonString());
        Assert.Equal(CompressionDefaults.Method.Key(), Defaults().Single(d => d.File == "LowRank.Build.Tasks.props" && d.Name == MetadataNames.Method).Value);
        Assert.Equal(CompressionRatio.Format(CompressionDefaults.Ratio), Defaults().Single(d => d.File == "LowRank.Build.Tasks.props" && d.Name == MetadataNames.Ratio).Value);
    }

    /// <summary>An item that records which metadata a task reads.</summary>
    private sealed class RecordingItem(ITaskItem inner) : ITaskItem
    {
        public HashSet<string> Read { get; } = new(StringComparer.Ordinal);

        public string ItemSpec { get => inner.ItemSpec; set => inner.ItemSpec = value; }
        public ICollection MetadataNames => inner.MetadataNames;
        public int MetadataCount => inner.MetadataCount;

        public string GetMetadata(string metadataName)
        {
            Read.Add(metadataName);
            return inner.GetMetadata(metadataName);
        }

        public void SetMetadata(string metadataName, string metadataValue) => inner.SetMetadata(metadataName, metadataValue);
        public void RemoveMetadata(string metadataName) => inner.RemoveMetadata(metadataName);
        public void CopyMetadataTo(ITaskItem destinationItem) => inner.CopyMetadataTo(destinationItem);
        public IDictionary CloneCustomMetadata() => inner.CloneCustomMetadata();
    }
}
