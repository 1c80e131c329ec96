using System.IO.Compression;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Xml.Linq;

namespace LowRank.Build.Tests;

/// <summary>The engine package apps reference (LowRank.Core, as packed into the test feed) holds the engine only: no
/// benchmark harness and no plotting dependency (those are LowRank.Bench, which the tool carries).</summary>
[Collection(PackedFeedTests.Name)]
public class EnginePackageTests(PackedFeed feed)
{
    [Fact]
    public void Core_package_has_no_benchmark_code_and_no_plotting_dependency()
    {
        var package = Directory.GetFiles(feed.Feed, "LowRank.Core.*.nupkg").Single();
        using var zip = ZipFile.OpenRead(package);

        using (var nuspec = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open())
        {
            var ids = XDocument.Load(nuspec).Descendants().Where(e => e.Name.LocalName == "dependency")
                .Select(e => (string)e.Attribute("id")!).ToList();
            Assert.Contains("TorchSharp", ids);
            Assert.DoesNotContain(ids, id => id.Contains("ScottPlot", StringComparison.OrdinalIgnoreCase) || id.Contains("Skia", StringComparison.OrdinalIgnoreCase));
        }

        var dll = zip.Entries.Single(e => e.FullName == "lib/net10.0/LowRank.Core.dll");
        using var bytes = new MemoryStream();
        using (var stream = dll.Open()) stream.CopyTo(bytes);
        bytes.Position = 0;
        using var pe = new PEReader(bytes);
        var metadata = pe.GetMetadataReader();
        var types = metadata.TypeDefinitions.Select(h => metadata.GetTypeDefinition(h))
            .Select(t => metadata.GetString(t.Namespace) + "." + metadata.GetString(t.Name)).ToList();
        Assert.Contains("LowRank.Compression.Compressor", types);
        Assert.DoesNotContain(types, t => t.Contains("Benchmark", StringComparison.Ordinal) || t.Contains("Parity", StringComparison.Ordinal)
            || t.EndsWith(".StagedCheckpoint", StringComparison.Ordinal) || t.EndsWith(".ReportPlots", StringComparison.Ordinal));
        var references = metadata.AssemblyReferences.Select(h => metadata.GetString(metadata.GetAssemblyReference(h).Name)).ToList();
        Assert.DoesNotContain(references, r => r.StartsWith("ScottPlot", StringComparison.Ordinal) || r.StartsWith("SkiaSharp", StringComparison.Ordinal));
    }
}
