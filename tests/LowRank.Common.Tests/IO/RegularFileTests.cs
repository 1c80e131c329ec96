using LowRank.IO;

namespace LowRank.Common.Tests.IO;

/// <summary><see cref="RegularFile"/> on real files, a real FIFO, a device and links: what .NET's File.Exists cannot tell apart.</summary>
public sealed class RegularFileTests : IDisposable
{
    private readonly TempFolder temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void Tells_regular_files_from_fifos_devices_and_folders()
    {
        File.WriteAllText(temp.File("regular"), "x");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [temp.File("fifo")])!) mkfifo.WaitForExit();
        File.CreateSymbolicLink(temp.File("link-to-fifo"), temp.File("fifo"));
        File.CreateSymbolicLink(temp.File("link-to-regular"), temp.File("regular"));

        Assert.True(File.Exists(temp.File("fifo"))); // why this class exists
        Assert.Equal(RegularFile.Kind.Regular, RegularFile.KindOf(temp.File("regular")));
        Assert.Equal(RegularFile.Kind.Regular, RegularFile.KindOf(temp.File("link-to-regular")));
        Assert.Equal(RegularFile.Kind.Fifo, RegularFile.KindOf(temp.File("fifo")));
        Assert.Equal(RegularFile.Kind.Fifo, RegularFile.KindOf(temp.File("link-to-fifo")));
        Assert.Equal(RegularFile.Kind.CharacterDevice, RegularFile.KindOf("/dev/null"));
        Assert.Equal(RegularFile.Kind.Directory, RegularFile.KindOf(temp.Path));
        Assert.Equal(RegularFile.Kind.Missing, RegularFile.KindOf(temp.File("missing")));
    }

    [Fact]
    public void Require_refuses_all_but_regular_and_missing_files()
    {
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [temp.File("fifo")])!) mkfifo.WaitForExit();
        var error = Assert.Throws<LrkException>(() => RegularFile.Require(temp.File("fifo"), ErrorCodes.BadSafetensors, "model weights"));
        Assert.Equal(ErrorCodes.BadSafetensors, error.Code);
        Assert.Contains("FIFO", error.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCodes.BadConfig, Assert.Throws<LrkException>(() => RegularFile.Require("/dev/zero", ErrorCodes.BadConfig, "a config")).Code);
        RegularFile.Require(temp.File("missing"), ErrorCodes.BadConfig, "a config");
        File.WriteAllText(temp.File("modèle.json"), "{}");
        RegularFile.Require(temp.File("modèle.json"), ErrorCodes.BadConfig, "a config");
        Assert.Equal(RegularFile.Kind.Regular, RegularFile.KindOf(temp.File("modèle.json")));
    }
}
