namespace LowRank.Compression;

/// <summary>Requested and achieved compression, over the compressed linears and over the whole model.</summary>
public sealed record RatioSummary(
    double RequestedRatio,
    long LinearParametersBefore,
    long LinearParametersAfter,
    double AchievedLinearRatio,
    long ModelParametersBefore,
    long ModelParametersAfter,
    double AchievedModelRatio,
    int DenseFallbacks);
