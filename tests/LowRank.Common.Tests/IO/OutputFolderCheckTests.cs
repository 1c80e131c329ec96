using LowRank.IO;

namespace LowRank.Common.Tests.IO;

/// <summary><see cref="OutputFolderCheck"/> on real folders and links: a source is never replaced, whichever way the
/// paths are spelled, and an output that cannot be created is refused before any work.</summary>
public sealed class OutputFolderCheckTests : IDisposable
{
    private readonly TempFolder temp = new();
    private readonly string parent;
    private readonly string model;

    public OutputFolderCheckTests()
    {
        parent = Directory.CreateDirectory(temp.File("parent")).FullName;
        model = Directory.CreateDirectory(Path.Combine(parent, "model")).FullName;
        File.WriteAllText(Path.Combine(model, "config.json"), "{}");
        Directory.CreateSymbolicLink(temp.File("link"), model);
    }

    public void Dispose() => temp.Dispose();

    private static string Code(Action check) => Assert.Throws<LrkException>(check).Code;

    [Fact]
    public void An_output_that_holds_the_source_behind_a_link_is_refused_even_with_force()
    {
        // The data-loss case: the source spelled as a link, --out the folder holding the real model, --force.
        Assert.Equal(ErrorCodes.OutputExists, Code(() => OutputFolderCheck.Check(parent, overwrite: true, temp.File("link"))));
        // The output spelled through a link to the folder holding the source.
        Directory.CreateSymbolicLink(temp.File("parent-link"), parent);
        Assert.Equal(ErrorCodes.OutputExists, Code(() => OutputFolderCheck.Check(temp.File("parent-link"), overwrite: true, model)));
        Assert.Equal(ErrorCodes.OutputExists, Code(() => OutputFolderCheck.Check(temp.Combine("parent-link", "model"), overwrite: true, temp.File("link"))));
        Assert.True(File.Exists(Path.Combine(model, "config.json")));
    }

    [Fact]
    public void An_output_inside_the_source_is_refused()
    {
        Assert.Equal(ErrorCodes.OutputExists, Code(() => OutputFolderCheck.Check(temp.Combine("link", "out"), overwrite: false, model)));
        Assert.Equal(ErrorCodes.OutputExists, Code(() => OutputFolderCheck.Check(Path.Combine(model, "a", "b"), overwrite: true, temp.File("link"))));
    }

    [Fact]
    public void An_output_holding_the_files_a_source_links_to_is_refused()
    {
        // A Hugging Face snapshot: its files are links into blobs/.
        var blobs = Directory.CreateDirectory(temp.Combine("hub", "blobs")).FullName;
        File.WriteAllText(Path.Combine(blobs, "abc"), "weights");
        var snapshot = Directory.CreateDirectory(temp.Combine("hub", "snapshots", "0123")).FullName;
        File.CreateSymbolicLink(Path.Combine(snapshot, "model.safetensors"), Path.Combine("..", "..", "blobs", "abc"));
        Assert.Equal(ErrorCodes.OutputExists, Code(() => OutputFolderCheck.Check(blobs, overwrite: true, snapshot)));
        OutputFolderCheck.Check(temp.File("elsewhere"), overwrite: false, snapshot);
    }

    [Fact]
    public void A_sibling_or_a_new_folder_passes_and_nothing_is_left_behind()
    {
        OutputFolderCheck.Check(Path.Combine(parent, "model-compressed"), overwrite: false, temp.File("link"));
        OutputFolderCheck.Check(temp.Combine("new", "deeper", "out"), overwrite: false, model);
        Assert.Equal(["link", "parent"], Directory.EnumerateFileSystemEntries(temp.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(["model"], Directory.EnumerateFileSystemEntries(parent).Select(Path.GetFileName));
    }

    [Fact]
    public void Existing_outputs_need_overwrite_and_files_are_never_replaced()
    {
        var existing = Directory.CreateDirectory(temp.File("existing")).FullName;
        Assert.Equal(ErrorCodes.OutputExists, Code(() => OutputFolderCheck.Check(existing, overwrite: false, model)));
        OutputFolderCheck.Check(existing, overwrite: true, model);
        File.WriteAllText(temp.File("file"), "x");
        Assert.Equal(ErrorCodes.OutputExists, Code(() => OutputFolderCheck.Check(temp.File("file"), overwrite: true, model)));
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/proc/lowrank-out")]
    [InlineData("/sys/fs/cgroup/lowrank-out")]
    [InlineData("/dev/lowrank-out")]
    public void Roots_and_kernel_file_systems_are_unwritable(string output) =>
        Assert.Equal(ErrorCodes.OutputUnwritable, Code(() => OutputFolderCheck.Check(output, overwrite: true, model)));

    [Fact]
    public void An_output_under_a_file_is_unwritable()
    {
        File.WriteAllText(temp.File("file"), "x");
        Assert.Equal(ErrorCodes.OutputUnwritable, Code(() => OutputFolderCheck.Check(temp.Combine("file", "a", "out"), overwrite: false, model)));
    }

    [Fact]
    public void An_empty_output_is_a_bad_argument() =>
        Assert.Equal(ErrorCodes.BadArgument, Code(() => OutputFolderCheck.Check("", overwrite: false, model)));
}
