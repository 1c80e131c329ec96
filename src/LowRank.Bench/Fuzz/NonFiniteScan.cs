using System.Buffers.Binary;

namespace LowRank.Bench.Fuzz;

/// <summary>The result check of a case that exited 0 with an output folder: every safetensors file under it must read
/// back, and its F32, F16 and BF16 tensors hold only finite values.</summary>
public static class NonFiniteScan
{
    /// <summary>What is wrong with the written files ("wrote N non-finite values", "wrote an unreadable …"), or null.</summary>
    public static string? Problem(string folder)
    {
        long bad = 0;
        foreach (var file in Directory.EnumerateFiles(folder, "*.safetensors", SearchOption.AllDirectories))
        {
            try
            {
                bad += Count(SafeTensorsImage.Read(file));
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException or InvalidOperationException or FormatException)
            {
                // The tool said it succeeded, so a file it wrote that does not read back is a wrong result, not a skip.
                return $"wrote an unreadable {Path.GetRelativePath(folder, file)} ({e.GetType().Name}: {e.Message})";
            }
        }
        return bad > 0 ? $"wrote {bad} non-finite values" : null;
    }

    private static long Count(SafeTensorsImage image)
    {
        long bad = 0;
        foreach (var name in image.TensorNames)
        {
            var dtype = image.Tensor(name)["dtype"]?.GetValue<string>();
            var (begin, end) = image.Offsets(name);
            var span = image.Data.AsSpan((int)begin, (int)(end - begin));
            switch (dtype)
            {
                case "F32":
                    for (var i = 0; i + 4 <= span.Length; i += 4) if (!float.IsFinite(BinaryPrimitives.ReadSingleLittleEndian(span[i..]))) bad++;
                    break;
                case "F16":
                    for (var i = 0; i + 2 <= span.Length; i += 2) if ((BinaryPrimitives.ReadUInt16LittleEndian(span[i..]) & 0x7C00) == 0x7C00) bad++;
                    break;
                case "BF16":
                    for (var i = 0; i + 2 <= span.Length; i += 2) if ((BinaryPrimitives.ReadUInt16LittleEndian(span[i..]) & 0x7F80) == 0x7F80) bad++;
                    break;
            }
        }
        return bad;
    }
}
