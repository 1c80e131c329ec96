using LowRank.Compression;

namespace LowRank.Tests.Compression;

/// <summary><see cref="CompressionOptionsText"/>: the Name=value settings of <c>--set</c> and the benchmarks.</summary>
public sealed class CompressionOptionsTextTests
{
    [Fact]
    public void Every_option_can_be_set_by_name()
    {
        var options = CompressionOptionsText.Apply(new CompressionOptions { Method = CompressionMethod.AdaSvd, Ratio = 0.5 },
            ["adasvditerations=3", "Propagation=original", "LcSvdSearchOffsets=[-0.1,0,0.1]", "AdaSvdTarget=Compressed", "AdaSvdMinRetention=0.3"]);
        Assert.Equal(3, options.AdaSvdIterations);
        Assert.Equal(Propagation.Original, options.Propagation);
        Assert.Equal([-0.1, 0, 0.1], options.LcSvdSearchOffsets);
        Assert.Equal(AdaCompTarget.Compressed, options.AdaSvdTarget);
        Assert.Equal(0.3, options.AdaSvdMinRetention);
        Assert.Equal(ErrorCodes.UnknownConfigKey, Assert.Throws<LrkException>(() => CompressionOptionsText.Apply(options, ["Rank=3"])).Code);
        Assert.Equal(ErrorCodes.BadConfigValue, Assert.Throws<LrkException>(() => CompressionOptionsText.Apply(options, ["AdaSvdIterations=many"])).Code);
        Assert.Equal(ErrorCodes.BadArgument, Assert.Throws<LrkException>(() => CompressionOptionsText.Apply(options, ["Ratio=0.3"])).Code);
    }
}
