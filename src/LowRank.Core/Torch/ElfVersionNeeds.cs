using System.Buffers.Binary;
using System.Text;

namespace LowRank.Torch;

/// <summary>
/// Reads and edits the symbol-version requirements (<c>.gnu.version_r</c>) of an ELF64 little-endian shared library.
/// Used for one thing: marking TorchSharp's requirement on <c>GLIBCXX_3.4.32</c> as weak (VER_FLG_WEAK), so the
/// dynamic loader accepts an older libstdc++ and resolves the single symbol from our shim instead.
/// </summary>
public static class ElfVersionNeeds
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;

    public sealed record Requirement(string File, string Version, ushort Flags, int FlagsOffset)
    {
        public bool IsWeak => (Flags & VerFlagWeak) != 0;
    }

    public static IReadOnlyList<Requirement> Read(byte[] elf)
    {
        var result = new List<Requirement>();
        var span = elf.AsSpan();
        if (span.Length < 64 || span[0] != 0x7f || span[1] != (byte)'E' || span[2] != (byte)'L' || span[3] != (byte)'F')
            throw new LrkException(ErrorCodes.CompatFixFailed, "not an ELF file");
        if (span[4] != 2 || span[5] != 1)
            throw new LrkException(ErrorCodes.CompatFixFailed, "only 64-bit little-endian ELF files are supported");

        var sectionHeaderOffset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(span[0x28..]));
        int sectionHeaderSize = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3A..]);
        int sectionCount = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3C..]);

        for (var i = 0; i < sectionCount; i++)
        {
            var header = span.Slice(sectionHeaderOffset + i * sectionHeaderSize, sectionHeaderSize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header[4..]) != ShtGnuVerneed) continue;
            var offset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(header[0x18..]));
            var link = BinaryPrimitives.ReadUInt32LittleEndian(header[0x28..]);
            var stringsHeader = span.Slice(sectionHeaderOffset + (int)link * sectionHeaderSize, sectionHeaderSize);
            var stringsOffset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(stringsHeader[0x18..]));

            var entry = offset;
            while (true)
            {
                int auxCount = BinaryPrimitives.ReadUInt16LittleEndian(span[(entry + 2)..]);
                var file = ReadString(span, stringsOffset + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(entry + 4)..]));
                var aux = entry + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(entry + 8)..]);
                for (var a = 0; a < auxCount; a++)
                {
                    var flags = BinaryPrimitives.ReadUInt16LittleEndian(span[(aux + 4)..]);
                    var name = ReadString(span, stringsOffset + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(aux + 8)..]));
                    result.Add(new Requirement(file, name, flags, aux + 4));
                    var nextAux = BinaryPrimitives.ReadUInt32LittleEndian(span[(aux + 12)..]);
                    if (nextAux == 0) break;
                    aux += (int)nextAux;
                }
                var next = BinaryPrimitives.ReadUInt32LittleEndian(span[(entry + 12)..]);
                if (next == 0) break;
                entry += (int)next;
            }
        }
        return result;
    }

    /// <summary>Sets VER_FLG_WEAK on every requirement of <paramref name="version"/>; returns how many were changed.</summary>
    public static int MarkWeak(byte[] elf, string version)
    {
        var changed = 0;
        foreach (var requirement in Read(elf))
        {
            if (requirement.Version != version || requirement.IsWeak) continue;
            BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(requirement.FlagsOffset), (ushort)(requirement.Flags | VerFlagWeak));
            changed++;
        }
        return changed;
    }

    private static string ReadString(ReadOnlySpan<byte> span, int offset)
    {
        var end = span[offset..].IndexOf((byte)0);
        return Encoding.ASCII.GetString(span.Slice(offset, end));
    }
}
