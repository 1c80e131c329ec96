using LowRank.Torch;

namespace LowRank.Tests.Torch;

public sealed class CompatFixTests
{
    private static string StockLibTorchSharp()
    {
        var path = Path.Combine(LowRankPaths.NuGetPackages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"restore puts TorchSharp at {path}");
        return path;
    }

    [Fact]
    public void Stock_library_requires_glibcxx_3_4_32_strongly_and_the_patch_makes_it_weak()
    {
        var bytes = File.ReadAllBytes(StockLibTorchSharp());
        var before = ElfVersionNeeds.Read(bytes);
        var requirement = Assert.Single(before, r => r.Version == "GLIBCXX_3.4.32");
        Assert.False(requirement.IsWeak);
        Assert.Equal("libstdc++.so.6", requirement.File);

        Assert.Equal(1, ElfVersionNeeds.MarkWeak(bytes, "GLIBCXX_3.4.32"));
        var after = ElfVersionNeeds.Read(bytes);
        Assert.True(Assert.Single(after, r => r.Version == "GLIBCXX_3.4.32").IsWeak);
        // every other requirement is untouched
        Assert.Equal(before.Where(r => r.Version != "GLIBCXX_3.4.32").Select(r => (r.File, r.Version, r.Flags)),
                     after.Where(r => r.Version != "GLIBCXX_3.4.32").Select(r => (r.File, r.Version, r.Flags)));
        Assert.Equal(0, ElfVersionNeeds.MarkWeak(bytes, "GLIBCXX_3.4.32"));
    }

    [Fact]
    public void Backend_engages_the_fix_exactly_when_the_host_lacks_the_version()
    {
        var info = TorchBackend.Initialize(DeviceRequest.Cpu);
        Assert.Equal(LibStdCxxCompat.Needed(), info.CompatFix);
        Assert.True(File.Exists(info.LibTorchSharpPath));
    }

    [Fact]
    public void Garbage_is_not_an_elf_file()
    {
        var error = Assert.Throws<LrkException>(() => ElfVersionNeeds.Read(new byte[100]));
        Assert.Equal(ErrorCodes.CompatFixFailed, error.Code);
    }
}
