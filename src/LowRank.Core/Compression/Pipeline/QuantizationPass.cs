using System.Diagnostics;
using LowRank.Models;
using LowRank.Quantization;
using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>
/// Quantizes a model's block linears block by block, as GPTQ's reference pipeline does (Frantar et al., 2022, Section 5:
/// "quantizing one Transformer block at a time … with the inputs of the already quantized blocks"): the calibration
/// hidden states enter block i through the blocks quantized so far, each linear's input Gram H is accumulated, every
/// linear of the block is quantized — a dense weight with <see cref="Gptq"/> or <see cref="Rtn"/>, factors with
/// <see cref="FactorQuantizer"/> — and the block's quantized output feeds block i+1.
/// <para>Used for the quantization-only baselines (<c>--method rtn|gptq</c>, every weight) and after a low-rank method
/// for quantized factors (<c>--factor-dtype int8|int4|int3</c>, every factorised linear). GPTQ's result is compared with
/// round-to-nearest on the same objective, and RTN's is kept in the rare case it is lower, so the stored result is never
/// worse than RTN on the calibration data (the report counts such fallbacks). RTN without calibration data quantizes
/// the weights directly and reports no objective.</para>
/// </summary>
internal static class QuantizationPass
{
    /// <summary>rtn/gptq: every block linear's dense weight, in <see cref="CompressionOptions.WeightFormat"/>.</summary>
    public static void RunBaseline(CompressionRun run)
    {
        var format = run.Options.WeightFormat;
        var quantizer = run.Options.Method == CompressionMethod.Gptq ? Quantizer.Gptq : Quantizer.Rtn;
        run.Quantization = Run(run, _ => format, quantizer, original: null);
        foreach (var module in run.Plan.Modules)
        {
            var linear = run.Model.BlockLinears(module.Block).First(l => l.Name == module.Name);
            run.RecordDense(linear, module);
        }
    }

    /// <param name="formatOf">The format of each linear; null leaves it as it is.</param>
    /// <param name="original">A linear's original weight [out, in] (the target factors are fitted to); null = the
    /// linear's own current weight (A·B for factors).</param>
    public static QuantizationReport Run(CompressionRun run, Func<LinearWeight, QuantFormat?> formatOf, Quantizer quantizer,
        Func<LinearWeight, Tensor?>? original)
    {
        var clock = Stopwatch.StartNew();
        var modules = new List<QuantizedModuleReport>();
        if (run.Samples == 0)
        {
            if (quantizer == Quantizer.Gptq) throw new LrkException(ErrorCodes.DataTooShort, "GPTQ needs calibration data");
            for (var block = 0; block < run.BlockCount; block++)
            {
                run.Report("quantize", block, $"block {block + 1}/{run.BlockCount}");
                using var held = run.Model.HoldOnDevice(block);
                foreach (var linear in run.Model.BlockLinears(block))
                {
                    if (formatOf(linear) is { } format) modules.Add(Quantize(run, linear, format, quantizer, null, original));
                }
            }
        }
        else
        {
            run.SingleStreamPass("quantize", Propagation.Compressed,
                block => new LinearStatistics(name => run.Model.BlockLinears(block).Any(l => l.Name == name && formatOf(l) is not null),
                    precision: run.Options.GramPrecision),
                (block, stats) =>
                {
                    foreach (var linear in run.Model.BlockLinears(block))
                    {
                        if (formatOf(linear) is { } format) modules.Add(Quantize(run, linear, format, quantizer, stats.Gram(linear.Name), original));
                    }
                });
        }
        var formats = modules.Select(m => m.Format).Distinct().ToList();
        var weights = run.Shapes.Where(s => modules.Any(m => m.Name == s.Name)).Sum(s => s.DenseParameters);
        var bytes = modules.Sum(m => m.Bytes);
        return new QuantizationReport
        {
            Quantizer = quantizer.ToString().ToLowerInvariant(),
            Format = formats.Count == 1 ? formats[0] : "mixed",
            Modules = modules,
            Bytes = bytes,
            BitsPerWeight = weights == 0 ? 0 : 8.0 * bytes / weights,
            RtnFallbacks = modules.Count(m => m.Chosen == "rtn" && quantizer == Quantizer.Gptq),
            Seconds = clock.Elapsed.TotalSeconds,
        };
    }

    /// <summary>Quantizes one linear in place (its storage becomes <see cref="QuantizedMatrix"/>es on its home device).</summary>
    private static QuantizedModuleReport Quantize(CompressionRun run, LinearWeight linear, QuantFormat format, Quantizer quantizer, Tensor? gram,
        Func<LinearWeight, Tensor?>? original)
    {
        using var scope = NewDisposeScope();
        var device = run.Device;
        var h = gram?.to(ScalarType.Float64, device);
        var home = (linear.A ?? linear.Weight ?? throw new LrkException(ErrorCodes.BadMethodOption, $"{linear.Name} is already quantized")).device;
        var given = original?.Invoke(linear);
        if (linear.IsFactorized)
        {
            var a = linear.A!.to(ScalarType.Float64, device);
            var b = linear.B!.to(ScalarType.Float64, device);
            var target = given?.to(ScalarType.Float64, device) ?? matmul(a, b);
            var chosen = FactorQuantizer.Quantize(a, b, format, quantizer, h, given is null ? null : target, run.Options.Gptq);
            double? objective = null, rtnObjective = null, floatObjective = null;
            var name = quantizer;
            if (h is not null)
            {
                var norm = TargetEnergy(target, h);
                floatObjective = QuantObjective.Of(target - matmul(a, b), h) / norm;
                objective = QuantObjective.Of(target - chosen.Product(), h) / norm;
                if (quantizer == Quantizer.Gptq)
                {
                    var rtn = FactorQuantizer.Quantize(a, b, format, Quantizer.Rtn);
                    rtnObjective = QuantObjective.Of(target - rtn.Product(), h) / norm;
                    if (rtnObjective < objective) (chosen, rtn, objective, name) = (rtn, chosen, rtnObjective, Quantizer.Rtn);
                    rtn.Dispose();
                }
            }
            var rank = linear.Rank;
            chosen.A.MoveTo(home);
            chosen.B.MoveTo(home);
            var bytes = chosen.Bytes;
            linear.Quantize(chosen.A, chosen.B);
            return new QuantizedModuleReport
            {
                Name = linear.Name, Format = format.ToString(), Factorized = true, Rank = rank, Bytes = bytes,
                FloatObjective = floatObjective, Objective = objective, RtnObjective = rtnObjective, Chosen = name.ToString().ToLowerInvariant(),
            };
        }
        else
        {
            var w = run.WeightOnDevice(linear).to(ScalarType.Float64);
            var target = given?.to(ScalarType.Float64, device) ?? w;
            var chosen = quantizer == Quantizer.Gptq
                ? Gptq.Quantize(w, h ?? throw new InvalidOperationException("GPTQ without a Gram"), format, run.Options.Gptq)
                : Rtn.Quantize(w, format);
            double? objective = null, rtnObjective = null;
            var name = quantizer;
            if (h is not null)
            {
                var norm = TargetEnergy(target, h);
                objective = QuantObjective.Of(target - chosen.Dequantize(ScalarType.Float64), h) / norm;
                if (quantizer == Quantizer.Gptq)
                {
                    var rtn = Rtn.Quantize(w, format);
                    rtnObjective = QuantObjective.Of(target - rtn.Dequantize(ScalarType.Float64), h) / norm;
                    if (rtnObjective < objective) (chosen, rtn, objective, name) = (rtn, chosen, rtnObjective, Quantizer.Rtn);
                    rtn.Dispose();
                }
            }
            chosen.MoveTo(home);
            var bytes = chosen.Bytes;
            linear.Quantize(chosen);
            return new QuantizedModuleReport
            {
                Name = linear.Name, Format = format.ToString(), Factorized = false, Bytes = bytes,
                FloatObjective = h is null ? null : 0, Objective = objective, RtnObjective = rtnObjective, Chosen = name.ToString().ToLowerInvariant(),
            };
        }
    }

    /// <summary>‖T X‖² = tr(T H Tᵀ), the normaliser of the reported objectives (1 where it is 0).</summary>
    private static double TargetEnergy(Tensor target, Tensor h)
    {
        var energy = QuantObjective.Of(target, h);
        return energy > 0 ? energy : 1;
    }
}
