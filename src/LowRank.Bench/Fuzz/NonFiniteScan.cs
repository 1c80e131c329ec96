using System.Buffers.Binary;

namespace LowRank.Bench.Fuzz;

/// <summary>Counts non-finite elements of the F32, F16 and BF16 tensors of the safetensors files under a folder (a result check).</summary>
public static class NonFiniteScan
{
    public static long Count(string folder)
    {
        long bad = 0;
        foreach (var file in Directory.EnumerateFiles(folder, "*.safetensors", SearchOption.AllDirectories))
        {
            SafeTensorsImage image;
            try { image = SafeTensorsImage.Read(file); }
            catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException or InvalidOperationException) { continue; }
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
        }
        return bad;
    }
}
