using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace LowRank.Torch;

/// <summary>
/// A CUDA capability TorchSharp does not wrap, reached through native symbols and set up once per process on first use:
/// the first <see cref="Available"/> on a CUDA device runs the set-up; if it fails because a library or symbol is
/// missing or a native call reports an error (another libtorch or CUDA build), the capability is off for the process,
/// with the reason in <see cref="Status"/>, and callers take their torch fallback.
/// </summary>
/// <typeparam name="T">What the set-up yields: the resolved functions and handles the capability runs with.</typeparam>
internal sealed class CudaFeature<T>(string offPrefix) where T : class
{
    private bool initialised;
    private string status = "not initialised";
    private T? value;

    /// <summary>Held while setting up; the capability also holds it around calls on shared native handles.</summary>
    public object Gate { get; } = new();

    /// <summary>What is in use, or why not.</summary>
    public string Status
    {
        get
        {
            lock (Gate) return status;
        }
    }

    /// <summary>The set-up's result; null before a successful <see cref="Available"/>, or when it failed.</summary>
    public T? Value => value;

    /// <summary>True when <paramref name="setUp"/> (run once, on the first call on a CUDA device) succeeded; it returns
    /// the value and the status text describing what is in use.</summary>
    public bool Available(Device device, Func<Device, (T Value, string Status)> setUp)
    {
        if (device.type != DeviceType.CUDA) return false;
        lock (Gate)
        {
            if (!initialised)
            {
                initialised = true;
                try
                {
                    (value, status) = setUp(device);
                }
                catch (Exception e) when (e is LrkException or DllNotFoundException or EntryPointNotFoundException or InvalidOperationException or ExternalException)
                {
                    value = null;
                    status = offPrefix + e.Message;
                }
            }
            return value is not null;
        }
    }
}
