using System.CommandLine;
using LowRank.Torch;

namespace LowRank.Tool.Commands;

public static class DoctorCommand
{
    public static Command Create()
    {
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var libTorch = CommonOptions.LibTorch();
        var command = new Command("doctor", "Report the OS, .NET, TorchSharp and libtorch in use, the devices, and run a numeric self-test on each.")
        {
            device, json, libTorch,
        };
        command.SetAction((parse, _) =>
        {
            var request = parse.GetValue(device);
            var report = Doctor.Run(request, parse.GetValue(libTorch));
            if (parse.GetValue(json))
            {
                Output.WriteJson(report);
            }
            else
            {
                Console.WriteLine($"OS              {report.Os}");
                Console.WriteLine($".NET            {report.DotNet}");
                Console.WriteLine($"TorchSharp      {report.TorchSharpVersion}  ({report.LibTorchSharpPath})");
                Console.WriteLine($"libtorch        {report.LibTorchVersion}  ({report.LibTorchSource}: {report.LibTorchDirectory})");
                Console.WriteLine($"compat fix      {(report.CompatFix ? "on" : "off")}  (host libstdc++: {report.HostLibStdCxx})");
                foreach (var d in report.Devices)
                {
                    var memory = d.MemoryBytes is { } bytes ? $"{bytes / (1024.0 * 1024 * 1024):F1} GiB" : "?";
                    Console.WriteLine($"device {d.Type,-8} {d.Name}, {memory}: self-test {d.SelfTest} " +
                        $"(256x256 SVD rel. error fp32 {d.SvdRelErrorFp32:E2}, fp64 {d.SvdRelErrorFp64:E2}){(d.Error is null ? "" : " " + d.Error)}");
                }
                if (report.Error is not null) Console.WriteLine($"error {report.Error}");
                Console.WriteLine($"self-test       {report.SelfTest} (requested device: {report.RequestedDevice})");
            }
            return Task.FromResult(report.SelfTest == "pass" ? ExitCodes.Success : ExitCodes.CheckFailed);
        });
        return command;
    }
}
