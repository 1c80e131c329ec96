namespace LowRank;

/// <summary>
/// Every error code the product emits, in one place; docs/error-codes.md has a row for each (what it means, how to
/// fix it), which ErrorCodeTableTests checks against this file.
/// Ranges: 1xxx environment and backend, 2xxx model files, 3xxx data and evaluation, 4xxx compression,
/// 5xxx artifacts and cache, 6xxx configuration and command line, 7xxx MSBuild integration.
/// </summary>
public static class ErrorCodes
{
    public const string Internal = "LRK0001";

    public const string LibTorchNotFound = "LRK1001";
    public const string CudaUnavailable = "LRK1002";
    public const string CompatFixFailed = "LRK1003";
    public const string NativeLoadFailed = "LRK1004";
    public const string UnknownDevice = "LRK1005";

    public const string ModelNotFound = "LRK2001";
    public const string BadSafetensors = "LRK2002";
    public const string BadConfig = "LRK2003";
    public const string UnsupportedArchitecture = "LRK2004";
    public const string BadTokenizer = "LRK2005";
    public const string BadShardIndex = "LRK2006";
    public const string BadCheckpoint = "LRK2007";
    public const string MissingTensor = "LRK2008";

    public const string DataUnreadable = "LRK3001";
    public const string DataTooShort = "LRK3002";
    public const string BadTaskFile = "LRK3003";
    public const string ReportUnwritable = "LRK3004";
    /// <summary>A perplexity measured as part of a command (compress --eval) is NaN or infinite on some window: the
    /// model's outputs overflow. The command fails with exit code 3, as <c>eval</c> does, and writes nothing.</summary>
    public const string NonFinitePerplexity = "LRK3005";

    public const string UnknownMethod = "LRK4001";
    public const string BadRatio = "LRK4002";
    public const string DecompositionFailed = "LRK4003";
    public const string BadMethodOption = "LRK4004";

    public const string BadArtifact = "LRK5001";
    public const string HashMismatch = "LRK5002";
    public const string CacheCorrupt = "LRK5003";
    public const string OutputExists = "LRK5004";
    public const string PackageNotFound = "LRK5005";
    public const string CacheLocked = "LRK5006";
    public const string RemoteCacheFailed = "LRK5007";
    /// <summary>The output folder cannot be created where it was asked for: the file system root, a kernel file system
    /// (/proc, /sys, /dev), under a file, or in a folder that does not take new entries.</summary>
    public const string OutputUnwritable = "LRK5008";
    public const string RemoteCacheUnauthorized = "LRK5009";

    public const string UnknownConfigKey = "LRK6001";
    public const string BadConfigValue = "LRK6002";
    public const string BadArgument = "LRK6003";

    public const string BadItem = "LRK7001";
    public const string ToolFailed = "LRK7002";
    public const string ToolNotFound = "LRK7003";
    public const string NotCached = "LRK7004";
    public const string ToolOutputMissing = "LRK7005";
    public const string ToolCancelled = "LRK7006";
    public const string PackageTooLarge = "LRK7007";
    public const string UnsupportedMSBuild = "LRK7008";
}
