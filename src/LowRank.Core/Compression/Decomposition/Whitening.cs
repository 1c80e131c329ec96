using static TorchSharp.torch;

namespace LowRank.Compression;

/// <summary>How a whitening factor was obtained (recorded per layer in the report).</summary>
public enum WhiteningKind
{
    /// <summary>Cholesky of H as it is (SVD-LLM Eq. 4–5).</summary>
    Cholesky,
    /// <summary>H was not numerically positive definite: Cholesky of H + (|λ_min| + ε·tr(H)/n)·I.</summary>
    ShiftedCholesky,
    /// <summary>Eigendecomposition H = Q Λ Qᵀ, S = Q Λ^½ with eigenvalues clamped at ε·λ_max (SVD-LLM V2; also the
    /// last resort when even the shifted Cholesky fails).</summary>
    Eigen,
    /// <summary>H is zero (no calibration signal reached this layer): S = I, i.e. plain SVD.</summary>
    Identity,
}

/// <summary>
/// A factor S with <c>H = X Xᵀ ≈ S Sᵀ</c> (n×n, fp64). Truncating the SVD of <c>W S</c> is optimal for
/// <c>‖(W − W')X‖_F</c> because <c>‖(W − W')X‖_F = ‖(W − W')S‖_F</c> whenever <c>S Sᵀ = X Xᵀ</c> (SVD-LLM Theorem 3.2);
/// the factors are then mapped back with <c>B = Σ_k^½ V_kᵀ S⁻¹</c>.
/// </summary>
public sealed class Whitening : IDisposable
{
    private readonly Tensor factor;
    private readonly Tensor? eigenvalueRoots;

    private Whitening(WhiteningKind kind, Tensor factor, Tensor? eigenvalueRoots, double shift, long clamped)
    {
        Kind = kind;
        this.factor = factor.DetachFromDisposeScope();
        this.eigenvalueRoots = eigenvalueRoots?.DetachFromDisposeScope();
        Shift = shift;
        ClampedEigenvalues = clamped;
    }

    public WhiteningKind Kind { get; }

    /// <summary>The diagonal shift added before a <see cref="WhiteningKind.ShiftedCholesky"/>; 0 otherwise.</summary>
    public double Shift { get; }

    /// <summary>How many eigenvalues an <see cref="WhiteningKind.Eigen"/> factor raised to the floor.</summary>
    public long ClampedEigenvalues { get; }

    /// <summary>S: lower-triangular L for Cholesky kinds, Q·Λ^½ for Eigen, I for Identity.</summary>
    public Tensor Factor => factor;

    /// <summary><c>W S</c>.</summary>
    public Tensor Whiten(Tensor weight) => Kind switch
    {
        WhiteningKind.Identity => weight.to(float64),
        WhiteningKind.Eigen => matmul(weight.to(float64), factor),
        _ => matmul(weight.to(float64), factor),
    };

    /// <summary><c>Y S⁻¹</c> (a triangular solve for Cholesky; <c>Y Λ^-½ Qᵀ</c> for Eigen).</summary>
    public Tensor Unwhiten(Tensor y)
    {
        var y64 = y.to(float64);
        return Kind switch
        {
            WhiteningKind.Identity => y64,
            // factor = Q Λ^½  ⇒  S⁻¹ = Λ^-½ Qᵀ = (Q Λ^-½)ᵀ; Q = factor / roots.
            WhiteningKind.Eigen => matmul(y64, (factor / eigenvalueRoots!.square().unsqueeze(0)).T),
            _ => linalg.solve_triangular(factor, y64, upper: false, left: false),
        };
    }

    /// <summary><c>Z S⁻ᵀ</c>: for <c>H = S Sᵀ</c> this is <c>Z H⁻¹ S</c>, the whitened form of a regression solution <c>Z H⁻¹</c>.</summary>
    public Tensor ApplyInverseTranspose(Tensor z)
    {
        var z64 = z.to(float64);
        return Kind switch
        {
            WhiteningKind.Identity => z64,
            // S⁻ᵀ = Q Λ^-½ = (Q Λ^½) / λ column-wise.
            WhiteningKind.Eigen => matmul(z64, factor) / eigenvalueRoots!.square().unsqueeze(0),
            _ => linalg.solve_triangular(factor.T, z64, upper: true, left: false),
        };
    }

    /// <summary>SVD-LLM's whitening: Cholesky in fp64; if H is not numerically PD, shift its spectrum so the smallest
    /// eigenvalue becomes ε·tr(H)/n and retry; if that fails too, fall back to <see cref="Eigen"/>.</summary>
    public static Whitening Cholesky(Tensor gram, double epsilon)
    {
        using var scope = NewDisposeScope();
        var h = Symmetrize(gram);
        CheckFinite(h);
        var n = h.shape[0];
        var trace = h.diagonal().sum().item<double>();
        if (!(trace > 0)) return IdentityOf(n, h.device);
        var (l, info) = linalg.cholesky_ex(h, check_errors: false);
        if (info.item<int>() == 0 && l.isfinite().all().item<bool>())
            return new Whitening(WhiteningKind.Cholesky, l, null, 0, 0);

        var smallest = linalg.eigvalsh(h)[0].item<double>();
        var shift = Math.Abs(smallest) + epsilon * trace / n;
        var (shifted, shiftedInfo) = linalg.cholesky_ex(h + shift * eye(n, dtype: float64, device: h.device), check_errors: false);
        if (shiftedInfo.item<int>() == 0 && shifted.isfinite().all().item<bool>())
            return new Whitening(WhiteningKind.ShiftedCholesky, shifted, null, shift, 0);
        return Eigen(h, epsilon);
    }

    /// <summary>SVD-LLM V2's whitening: <c>H = Q Λ Qᵀ</c>, <c>S = Q Λ^½</c>, eigenvalues below ε·λ_max raised to it (so S is
    /// invertible and a full-rank factorisation still reproduces W exactly).</summary>
    public static Whitening Eigen(Tensor gram, double epsilon)
    {
        using var scope = NewDisposeScope();
        var h = Symmetrize(gram);
        CheckFinite(h);
        var (eigenvalues, eigenvectors) = linalg.eigh(h);
        var largest = eigenvalues[-1].item<double>();
        if (!(largest > 0)) return IdentityOf(h.shape[0], h.device);
        var floor = epsilon * largest;
        var clamped = (eigenvalues < floor).sum().item<long>();
        var roots = eigenvalues.clamp_min(floor).sqrt();
        return new Whitening(WhiteningKind.Eigen, eigenvectors * roots.unsqueeze(0), roots, 0, clamped);
    }

    /// <summary>A NaN trace would otherwise read as "no signal" and whiten with the identity, silently.</summary>
    private static void CheckFinite(Tensor h) =>
        NonFinite.Check(h, $"the [{h.shape[0]}, {h.shape[1]}] calibration Gram", "the activations overflowed: the weights or norms upstream are not finite, or the compute dtype is too narrow (use --dtype fp32)");

    private static Whitening IdentityOf(long n, Device device) =>
        new(WhiteningKind.Identity, eye(n, dtype: float64, device: device), null, 0, 0);

    /// <summary>The fp64 Gram made exactly symmetric, <c>(H + Hᵀ)/2</c>: in place when it is fp64 already (a Gram is
    /// symmetric up to rounding, so the average is the better copy of it for every later use), tile by tile so no n² temporary
    /// exists (a 70B down_proj Gram is 28672², 6.6 GB in fp64; the out-of-place form held three of them).</summary>
    private static Tensor Symmetrize(Tensor gram) => SymmetrizeInPlace(gram.to(float64));

    /// <summary><c>h ← (h + hᵀ)/2</c> for a square tensor, in tiles of 4096²: the same elementwise operations (so the
    /// same bits) as the out-of-place form, with temporaries of one tile.</summary>
    internal static Tensor SymmetrizeInPlace(Tensor h, long tile = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tile);
        var n = h.shape[0];
        if (h.shape.Length != 2 || h.shape[1] != n) throw new ArgumentException("a square matrix is needed", nameof(h));
        using var scope = NewDisposeScope();
        for (long i = 0; i < n; i += tile)
        {
            var rows = Math.Min(tile, n - i);
            for (var j = i; j < n; j += tile)
            {
                using var inner = NewDisposeScope();
                var cols = Math.Min(tile, n - j);
                var upper = h.narrow(0, i, rows).narrow(1, j, cols);
                var lower = h.narrow(0, j, cols).narrow(1, i, rows);
                var mean = (upper + lower.T) * 0.5;
                upper.copy_(mean);
                lower.copy_(mean.T);
            }
        }
        return h;
    }

    public void Dispose()
    {
        factor.Dispose();
        eigenvalueRoots?.Dispose();
    }
}
