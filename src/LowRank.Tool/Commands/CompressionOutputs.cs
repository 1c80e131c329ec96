using LowRank.Artifacts;
using LowRank.Compression;
using LowRank.Jobs;
using LowRank.Onnx;

namespace LowRank.Tool.Commands;

/// <summary>What <c>compress --format</c> wrote: the folder, the compression, and the ONNX export if one was asked for.</summary>
public sealed record CompressionOutputsResult(string Out, ModelFormats Formats, CompressionJobResult Compression, OnnxExportResult? Onnx);

/// <summary>
/// <c>compress --format</c>: the compressed artifact, its ONNX export (<see cref="OnnxExporter"/>, fp32 graph, the
/// factorised linears as two MatMuls), or both, in one folder that appears only when everything in it is written
/// (so a cache entry, or a user's --out, is never an artifact without the export it was asked for).
/// <list type="bullet">
/// <item>safetensors: the artifact, as <see cref="CompressionJob"/> writes it.</item>
/// <item>onnx: the ONNX folder alone, with the compression report (lowrank-report.json) for provenance; the artifact
/// is an intermediate, deleted afterwards.</item>
/// <item>safetensors;onnx: the artifact, and the ONNX folder in its <c>onnx/</c> (<see cref="ModelFormats.OnnxSubfolder"/>).</item>
/// </list>
/// </summary>
public static class CompressionOutputs
{
    public static CompressionOutputsResult Run(CompressionJobOptions job, ModelFormats formats, IProgress<ProgressUpdate>? progress, CancellationToken token)
    {
        if (!formats.Onnx) return new CompressionOutputsResult(job.Out, formats, CompressionJob.Run(job, progress, token), null);
        // The job below writes into a temp folder: the real output is checked against the source here, before any work.
        ArtifactWriter.CheckOutput(job.Out, CompressionJob.SourceLocation(job.Model), job.Force);
        var target = Path.GetFullPath(job.Out);
        return ArtifactFiles.PublishFolder(target, job.Force, temp =>
        {
            if (formats.Safetensors)
            {
                // The job replaces the (empty) temp folder with the artifact, atomically; the export goes inside it.
                var compressed = CompressionJob.Run(job with { Out = temp, Force = true }, progress, token);
                var onnx = OnnxExporter.Export(temp, Path.Combine(temp, ModelFormats.OnnxSubfolder), new OnnxExportOptions(), progress, token);
                return new CompressionOutputsResult(target, formats, compressed, onnx with { Folder = Path.Combine(target, ModelFormats.OnnxSubfolder) });
            }
            var artifact = temp + ".artifact";
            try
            {
                var compressed = CompressionJob.Run(job with { Out = artifact, Force = false }, progress, token);
                var onnx = OnnxExporter.Export(artifact, temp, new OnnxExportOptions { Overwrite = true }, progress, token);
                File.Copy(compressed.ReportPath, Path.Combine(temp, CompressionJob.ReportFileName));
                return new CompressionOutputsResult(target, formats, compressed,
                    onnx with { Folder = target, Files = onnx.Files.Append(CompressionJob.ReportFileName).Order(StringComparer.Ordinal).ToList() });
            }
            finally
            {
                if (Directory.Exists(artifact)) Directory.Delete(artifact, recursive: true);
            }
        });
    }
}
