using LowRank.IO;

namespace LowRank.Common.Tests.IO;

/// <summary><see cref="RealPath"/> on real links in a temp folder, compared with what the kernel says (realpath(1)
/// semantics: links in every component, ".." applied to the link's target).</summary>
public sealed class RealPathTests : IDisposable
{
    private readonly TempFolder temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void Resolves_links_in_every_component_and_dot_dot_after_a_link()
    {
        var real = Directory.CreateDirectory(temp.Combine("a", "b", "model")).FullName;
        File.WriteAllText(Path.Combine(real, "config.json"), "{}");
        Directory.CreateSymbolicLink(temp.File("hop"), Path.Combine("a", "b")); // relative target
        Directory.CreateSymbolicLink(temp.File("link"), Path.Combine(temp.Path, "hop", "model"));

        Assert.Equal(real, RealPath.Resolve(temp.File("link")));
        Assert.Equal(Path.Combine(real, "config.json"), RealPath.Resolve(temp.Combine("link", "config.json")));
        // ".." after a link is the parent of its target, not of the spelling.
        Assert.Equal(Path.GetDirectoryName(real), RealPath.Resolve(temp.Combine("link", "..")));
        // What does not exist yet is kept as spelled, below the resolved part.
        Assert.Equal(Path.Combine(real, "new", "out"), RealPath.Resolve(temp.Combine("link", "new", "out")));
        // ResolveLinkTarget alone stops at the last component (it leaves "hop" in), which is why RealPath walks them all.
        Assert.NotEqual(real, new DirectoryInfo(temp.File("link")).ResolveLinkTarget(returnFinalTarget: true)!.FullName);
        foreach (var spelled in new[] { temp.File("link"), temp.Combine("link", ".."), temp.Combine("hop", "model", "..", "..", "b", "new") })
            Assert.Equal(CoreutilsRealPath(spelled), RealPath.Resolve(spelled));
    }

    private static string CoreutilsRealPath(string path)
    {
        var run = ProcessRunner.Run("realpath", ["-m", path], Environment.CurrentDirectory);
        Assert.Equal(0, run.ExitCode);
        var output = run.StdoutText.TrimEnd('\n');
        return output;
    }

    [Fact]
    public void Relative_paths_resolve_against_the_current_folder()
    {
        Assert.Equal(RealPath.Resolve(Environment.CurrentDirectory), RealPath.Resolve("."));
        Assert.Equal("/", RealPath.Resolve("/"));
        Assert.Equal("/", RealPath.Resolve("/.."));
    }

    [Fact]
    public void A_link_loop_is_a_coded_error()
    {
        Directory.CreateSymbolicLink(temp.File("x"), temp.File("y"));
        Directory.CreateSymbolicLink(temp.File("y"), temp.File("x"));
        var error = Assert.Throws<LrkException>(() => RealPath.Resolve(temp.Combine("x", "out")));
        Assert.Equal(ErrorCodes.BadArgument, error.Code);
    }

    [Theory]
    [InlineData("/a/b", "/a", true)]
    [InlineData("/a", "/a", true)]
    [InlineData("/ab", "/a", false)]
    [InlineData("/a", "/a/b", false)]
    [InlineData("/a", "/", true)]
    public void Same_or_under_compares_whole_components(string inner, string outer, bool expected) =>
        Assert.Equal(expected, RealPath.IsSameOrUnder(inner, outer));
}
