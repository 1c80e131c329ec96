using System.Text;
using LowRank.Bench.Fuzz;

namespace LowRank.Bench.Tests;

/// <summary>The fuzzer's result check on a folder a case wrote with exit 0: finite tensors pass, a non-finite value or
/// a safetensors file that does not read back is a wrong result.</summary>
public sealed class NonFiniteScanTests
{
    private static void WriteSafeTensors(string path, params float[] values)
    {
        var header = Encoding.UTF8.GetBytes($"{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{values.Length}],\"data_offsets\":[0,{4 * values.Length}]}}}}");
        using var file = File.Create(path);
        file.Write(BitConverter.GetBytes((ulong)header.Length));
        file.Write(header);
        foreach (var value in values) file.Write(BitConverter.GetBytes(value));
    }

    [Fact]
    public void Finite_files_pass_and_non_finite_or_unreadable_ones_are_named()
    {
        using var temp = new TempFolder();
        WriteSafeTensors(temp.File("model.safetensors"), 1f, -2f, 0.5f);
        Assert.Null(NonFiniteScan.Problem(temp.Path));

        WriteSafeTensors(temp.File("model.safetensors"), 1f, float.PositiveInfinity, float.NaN);
        Assert.Equal("wrote 2 non-finite values", NonFiniteScan.Problem(temp.Path));

        File.WriteAllBytes(temp.File("model.safetensors"), [1, 2, 3]);
        Assert.StartsWith("wrote an unreadable model.safetensors", NonFiniteScan.Problem(temp.Path));
    }
}
