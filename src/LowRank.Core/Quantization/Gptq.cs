using static TorchSharp.torch;

namespace LowRank.Quantization;

/// <summary>GPTQ's knobs (reference defaults).</summary>
public sealed record GptqOptions
{
    /// <summary>λ/mean(diag H) added to H's diagonal before it is inverted ("percdamp", 0.01 in the paper's code).</summary>
    public double Damping { get; init; } = 0.01;

    /// <summary>Columns per lazy batch (B = 128 in the paper). Rounded down to a multiple of the group size, so a group
    /// never straddles two batches.</summary>
    public int BlockSize { get; init; } = 128;

    public static readonly GptqOptions Default = new();
}

/// <summary>
/// GPTQ (Frantar, Ashkboos, Hoefler and Alistarh, 2022, "GPTQ: Accurate Post-Training Quantization for Generative
/// Pre-trained Transformers"). It minimises the layer-wise reconstruction error on the calibration inputs X,
/// <c>‖W X − Q X‖²_F = tr((W − Q) H (W − Q)ᵀ)</c> with <c>H = X Xᵀ</c> (Eq. 1), by quantizing one column at a time and
/// moving each column's rounding error onto the columns not yet quantized with the optimal-brain-surgeon update
/// <c>δ = −(w_q − q)/[H⁻¹]_qq · (H⁻¹)_{:,q}</c> (Eqs. 2–3). The three steps of Section 4:
/// <list type="number">
/// <item>Arbitrary order: every row is quantized in the same column order (left to right), so all rows share one
/// sequence of inverse Hessians.</item>
/// <item>Lazy batch updates: the updates of a batch of <see cref="GptqOptions.BlockSize"/> columns are applied at once
/// to the rest of the matrix (one matrix product per batch instead of a rank-1 update per column).</item>
/// <item>Cholesky reformulation: the rows of the successive inverse Hessians are the rows of the upper Cholesky factor
/// U of H⁻¹ (<c>H⁻¹ = Uᵀ U</c>), computed once after damping H by λ = <see cref="GptqOptions.Damping"/>·mean(diag H)
/// (Eq. 5 and Algorithm 1).</item>
/// </list>
/// With groups, a group's grid is fitted to its columns as they are when the group's first column comes up (after the
/// updates from earlier columns; the reference code fits it to the batch's stale copy when a group starts inside a
/// batch), int8's per-row grid to W up front. Channels that never saw a non-zero input (H_jj = 0) get H_jj = 1 and
/// W_{:,j} = 0, as in the reference. Everything runs in fp64; the column loop of a batch runs in host memory.
/// </summary>
public static class Gptq
{
    /// <summary>Quantizes <paramref name="weight"/> [rows, cols] for inputs with Gram <paramref name="hessian"/> [cols, cols]
    /// (X Xᵀ up to a factor, which cancels).</summary>
    public static QuantizedMatrix Quantize(Tensor weight, Tensor hessian, QuantFormat format, GptqOptions? options = null)
    {
        options ??= GptqOptions.Default;
        if (weight.dim() != 2) throw new ArgumentException($"weight must be [rows, cols] (got [{string.Join(",", weight.shape)}])");
        var rows = weight.shape[0];
        var cols = weight.shape[1];
        if (!hessian.shape.SequenceEqual([cols, cols]))
            throw new ArgumentException($"the Hessian must be [{cols}, {cols}] (got [{string.Join(",", hessian.shape)}])");
        using var scope = NewDisposeScope();
        var w = weight.to(ScalarType.Float64).clone();
        var h = hessian.to(ScalarType.Float64, w.device).clone();
        var diagonal = h.diagonal();
        var dead = diagonal.eq(0);
        if (dead.any().item<bool>())
        {
            diagonal.masked_fill_(dead, 1.0);
            w.masked_fill_(dead.unsqueeze(0), 0.0);
        }
        var upper = InverseCholesky(h, options.Damping);

        var groupSize = format.PerChannel ? 0 : format.GroupSize;
        var groups = format.Groups(cols);
        var codes = zeros([rows, cols], ScalarType.Float64, w.device);
        var scales = zeros([rows, groups], ScalarType.Float64, w.device);
        var zeroPoints = zeros([rows, groups], ScalarType.Float64, w.device);
        if (format.PerChannel)
        {
            var (s, z) = QuantGrid.Fit(w, format);
            scales.select(1, 0).copy_(s);
            zeroPoints.select(1, 0).copy_(z);
        }
        var block = groupSize == 0 ? options.BlockSize : Math.Max(groupSize, options.BlockSize / groupSize * groupSize);
        for (long i1 = 0; i1 < cols; i1 += block)
        {
            using var batchScope = NewDisposeScope();
            var count = (int)Math.Min(block, cols - i1);
            var batch = new Batch(w.narrow(1, i1, count), upper.narrow(0, i1, count).narrow(1, i1, count));
            for (var i = 0; i < count; i++)
            {
                var column = i1 + i;
                var group = groupSize == 0 ? 0 : column / groupSize;
                if (groupSize > 0 && column % groupSize == 0)
                {
                    // The group's grid from its columns as they are now (every earlier column's update applied).
                    using var groupScope = NewDisposeScope();
                    var (s, z) = QuantGrid.Fit(batch.Columns(i, Math.Min(groupSize, count - i)), format);
                    scales.select(1, group).copy_(s);
                    zeroPoints.select(1, group).copy_(z);
                    batch.SetGrid(s, z);
                }
                else if (i == 0) batch.SetGrid(scales.select(1, group), zeroPoints.select(1, group));
                batch.QuantizeColumn(i, format);
            }
            codes.narrow(1, i1, count).copy_(batch.CodesTensor(w.device));
            var rest = cols - i1 - count;
            if (rest > 0) w.narrow(1, i1 + count, rest).sub_(matmul(batch.ErrorTensor(w.device), upper.narrow(0, i1, count).narrow(1, i1 + count, rest)));
        }
        return QuantizedMatrix.FromCodes(format, codes, format.PerChannel ? scales.select(1, 0) : scales, format.ZeroPoints ? zeroPoints : null);
    }

    /// <summary>
    /// One lazy batch of columns, quantized column by column in host memory: per column, a few operations on every row
    /// (cheap as plain loops, costly as one tensor call each). Row-major [rows, count] arrays.
    /// </summary>
    private sealed class Batch
    {
        private readonly int rows;
        private readonly int count;
        private readonly double[] w;
        private readonly double[] hinv;
        private readonly double[] codes;
        private readonly double[] errors;
        private double[] scale = [];
        private double[] zero = [];

        public Batch(Tensor columns, Tensor hinv)
        {
            rows = (int)columns.shape[0];
            count = (int)columns.shape[1];
            w = columns.to(ScalarType.Float64, CPU).contiguous().data<double>().ToArray();
            this.hinv = hinv.to(ScalarType.Float64, CPU).contiguous().data<double>().ToArray();
            codes = new double[rows * count];
            errors = new double[rows * count];
        }

        /// <summary>Columns [i, i + n) as they are now, [rows, n].</summary>
        public Tensor Columns(int i, int n)
        {
            var slice = new double[rows * n];
            for (var r = 0; r < rows; r++) Array.Copy(w, r * count + i, slice, r * n, n);
            return tensor(slice, [rows, n], ScalarType.Float64);
        }

        public void SetGrid(Tensor s, Tensor z)
        {
            scale = s.to(ScalarType.Float64, CPU).contiguous().data<double>().ToArray();
            zero = z.to(ScalarType.Float64, CPU).contiguous().data<double>().ToArray();
        }

        /// <summary>Quantizes column i of every row (<see cref="QuantGrid.Codes"/>: round half to even, clamp) and moves
        /// the rounding error, divided by [H⁻¹]_ii, onto the batch's later columns along row i of U.</summary>
        public void QuantizeColumn(int i, QuantFormat format)
        {
            var (low, high) = format.PerChannel ? (-127.0, 127.0) : (0.0, format.MaxCode);
            var d = hinv[i * count + i];
            for (var r = 0; r < rows; r++)
            {
                var at = r * count + i;
                var value = w[at];
                var q = Math.Clamp(Math.Round(value / scale[r], MidpointRounding.ToEven) + zero[r], low, high);
                var error = (value - (q - zero[r]) * scale[r]) / d;
                codes[at] = q;
                errors[at] = error;
                for (var j = i + 1; j < count; j++) w[r * count + j] -= error * hinv[i * count + j];
            }
        }

        public Tensor CodesTensor(Device device) => tensor(codes, [rows, count], ScalarType.Float64).to(device);

        public Tensor ErrorTensor(Device device) => tensor(errors, [rows, count], ScalarType.Float64).to(device);
    }

    /// <summary>The upper Cholesky factor U of (H + λI)⁻¹, λ = <paramref name="damping"/>·mean(diag H). A Hessian that is
    /// still not positive definite (rank-deficient calibration data) is damped ten times more, up to λ = mean(diag H).</summary>
    internal static Tensor InverseCholesky(Tensor h, double damping)
    {
        using var scope = NewDisposeScope();
        var mean = h.diagonal().mean().item<double>();
        var n = h.shape[0];
        for (var relative = damping; ; relative *= 10)
        {
            var damped = h + eye(n, dtype: ScalarType.Float64, device: h.device) * (relative * mean);
            var (lower, info) = linalg.cholesky_ex(damped);
            if (info.item<int>() == 0)
            {
                var inverse = cholesky_inverse(lower);
                var (factor, info2) = linalg.cholesky_ex(inverse);
                if (info2.item<int>() == 0) return factor.T.contiguous().MoveToOuterDisposeScope();
            }
            if (relative >= 1)
                throw new LrkException(ErrorCodes.DecompositionFailed, "GPTQ: the input Gram is not positive definite even with damping 1·mean(diag H)");
        }
    }
}
