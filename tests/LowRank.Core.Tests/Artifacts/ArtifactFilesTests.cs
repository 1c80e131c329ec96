using System.Diagnostics;
using LowRank.Artifacts;
using LowRank.Testing;

namespace LowRank.Tests.Artifacts;

/// <summary>The temp-folder-then-rename publication (<see cref="ArtifactFiles.PublishFolder"/>): what a killed writer
/// left next to the target is removed by the next writer of that target, and nothing else is.</summary>
public sealed class ArtifactFilesTests
{
    /// <summary>The id of a process that has exited (a short-lived child, waited for).</summary>
    private static int DeadProcessId()
    {
        using var child = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        child.WaitForExit();
        return child.Id;
    }

    [Fact]
    public void The_next_writer_removes_a_killed_writers_temp_folder_and_nothing_else()
    {
        using var temp = new TempFolder();
        var dead = DeadProcessId();
        string Hidden(string name)
        {
            var folder = temp.File(name);
            Directory.CreateDirectory(folder);
            File.WriteAllText(Path.Combine(folder, "model.safetensors"), "half-written");
            return folder;
        }
        var killed = Hidden($".out.lowrank-{dead}-0123456789abcdef.tmp");
        var live = Hidden($".out.lowrank-{Environment.ProcessId}-fedcba9876543210.tmp");   // a writer still running
        var unnumbered = Hidden(".out.lowrank-0123456789abcdef0123456789abcdef.tmp");     // the name before process ids
        var displaced = Hidden($".out.lowrank-{dead}-0123456789abcdef.old");               // a --force swap's old output
        var otherTarget = Hidden($".out2.lowrank-{dead}-0123456789abcdef.tmp");

        ArtifactFiles.PublishFolder(temp.File("out"), overwrite: false, folder => { File.WriteAllText(Path.Combine(folder, "config.json"), "{}"); return 0; });

        Assert.True(File.Exists(temp.File("out/config.json")));
        Assert.False(Directory.Exists(killed));
        Assert.All([live, unnumbered, displaced, otherTarget], folder => Assert.True(Directory.Exists(folder), folder));
        Assert.DoesNotContain(Directory.EnumerateDirectories(temp.Path), folder => Path.GetFileName(folder).StartsWith(".out.lowrank-", StringComparison.Ordinal)
            && Path.GetFileName(folder).EndsWith(".tmp", StringComparison.Ordinal) && folder != live && folder != unnumbered);
    }
}
