using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace LowRank.IO;

/// <summary>
/// Whether a path (links followed) is a regular file, and not a FIFO, device or socket: opening a FIFO named
/// <c>model.safetensors</c> for reading blocks until a writer comes, forever, and a device never ends. .NET's file
/// APIs do not tell these apart (<see cref="File.Exists"/> is true and <see cref="FileInfo.Attributes"/> Normal for
/// all of them), so the type comes from statx(2), whose buffer layout is the same on every Linux architecture.
/// </summary>
public static class RegularFile
{
    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1;
    private const int ModeOffset = 28;

    /// <summary>What a path is, as far as reading it as a file goes.</summary>
    public enum Kind { Missing, Regular, Directory, Fifo, CharacterDevice, BlockDevice, Socket, Other }

    public static Kind KindOf(string path)
    {
        if (!OperatingSystem.IsLinux())
            return File.Exists(path) ? Kind.Regular : Directory.Exists(path) ? Kind.Directory : Kind.Missing;
        var name = Encoding.UTF8.GetBytes(path + "\0");
        var buffer = new byte[256];
        if (Statx(AtFdCwd, name, 0, StatxType, buffer) != 0) return Kind.Missing;
        return (BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(ModeOffset)) & 0xF000) switch
        {
            0x8000 => Kind.Regular,
            0x4000 => Kind.Directory,
            0x1000 => Kind.Fifo,
            0x2000 => Kind.CharacterDevice,
            0x6000 => Kind.BlockDevice,
            0xC000 => Kind.Socket,
            _ => Kind.Other,
        };
    }

    /// <summary>Throws <paramref name="code"/> when <paramref name="path"/> exists but is not a regular file (a missing
    /// one is left to the caller's own "not found").</summary>
    /// <param name="what">What the file is for, e.g. "model weights".</param>
    public static void Require(string path, string code, string what)
    {
        var kind = KindOf(path);
        if (kind is Kind.Missing or Kind.Regular) return;
        var described = kind switch
        {
            Kind.Fifo => "a named pipe (FIFO)",
            Kind.CharacterDevice or Kind.BlockDevice => "a device",
            Kind.Socket => "a socket",
            Kind.Directory => "a folder",
            _ => "not a regular file",
        };
        throw new LrkException(code, $"{path} is {described}; {what} must be a regular file");
    }

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int dirfd, byte[] path, int flags, uint mask, byte[] buffer);
}
