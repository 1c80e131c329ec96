using LowRank.Compression;
using Microsoft.Build.Framework;

namespace LowRank.Build.Tasks.Tests;

/// <summary><see cref="ResolveCompressedModels"/> as the tests run it: one item, a project folder of their own, the cache
/// and state under it.</summary>
internal static class TestResolveTask
{
    public static ResolveCompressedModels Create(IBuildEngine engine, ITaskItem item, TempFolder folder) => new()
    {
        BuildEngine = engine,
        CompressedModels = [item],
        ProjectDirectory = folder.Path,
        StateDirectory = folder.Combine("obj"),
        // Any managed dll with a product version stands in for the tool: only its version is read.
        ToolPath = typeof(CompressionRequest).Assembly.Location,
        CacheDirectory = folder.Combine("cache"),
    };
}
