using System.Runtime.InteropServices;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace LowRank.Build.Tasks;

/// <summary>
/// Puts cache files into bin/ or publish/ as hard links where the file system allows (a 13 GB model then costs no
/// space and no copy time), else as copies (which .NET makes copy-on-write where the file system supports it),
/// carrying the source's write time. A destination with the same size and time is left alone, so the standard copy
/// targets that run next see the files as up to date. A stale destination is unlinked first, never written
/// through: it may be a hard link into the read-only cache.
/// </summary>
public sealed partial class LinkModelFiles : LowRankTask
{
    [Required] public ITaskItem[] SourceFiles { get; set; } = [];
    [Required] public ITaskItem[] DestinationFiles { get; set; } = [];

    [Output] public ITaskItem[] WrittenFiles { get; private set; } = [];

    protected override void ExecuteCore()
    {
        if (SourceFiles.Length != DestinationFiles.Length) throw new LrkException(ErrorCodes.Internal, "LinkModelFiles needs as many destinations as sources");
        int linked = 0, copied = 0, current = 0;
        var written = new List<ITaskItem>();
        for (var i = 0; i < SourceFiles.Length; i++)
        {
            var source = new FileInfo(SourceFiles[i].ItemSpec);
            var destination = Path.GetFullPath(DestinationFiles[i].ItemSpec);
            written.Add(new TaskItem(destination));
            var existing = new FileInfo(destination);
            if (existing.Exists && existing.Length == source.Length && existing.LastWriteTimeUtc == source.LastWriteTimeUtc)
            {
                current++;
                continue;
            }
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            if (existing.Exists)
            {
                if (OperatingSystem.IsWindows()) File.SetAttributes(destination, FileAttributes.Normal);
                File.Delete(destination);
            }
            if (TryHardLink(source.FullName, destination))
            {
                linked++;
                continue;
            }
            File.Copy(source.FullName, destination);
            if (OperatingSystem.IsWindows()) File.SetAttributes(destination, FileAttributes.Normal);
            else File.SetUnixFileMode(destination, File.GetUnixFileMode(destination) | UnixFileMode.UserWrite);
            File.SetLastWriteTimeUtc(destination, source.LastWriteTimeUtc);
            copied++;
        }
        WrittenFiles = written.ToArray();
        Log.LogMessage(MessageImportance.Normal, $"LowRank: {linked} file(s) hard-linked, {copied} copied, {current} up to date");
    }

    private static bool TryHardLink(string source, string destination) =>
        OperatingSystem.IsWindows() ? CreateHardLinkW(destination, source, IntPtr.Zero) : link(source, destination) == 0;

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int link(string oldPath, string newPath);

    [LibraryImport("kernel32.dll", StringMarshalling = StringMarshalling.Utf16, SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool CreateHardLinkW(string fileName, string existingFileName, IntPtr securityAttributes);
}
