"""Micro-measurements behind two choices of the CUDA pipeline (issue 8), run on the GPU machine; prints one JSON object.
1. Low-rank forward: y = A (B x) in fp16 for LLaMA-7B shapes at ranks that are and are not multiples of 8 (cuBLAS
   wants 16-byte aligned leading dimensions for its fastest tensor-core kernels), against the dense product.
2. Symmetric Gram XᵀX of one calibration batch: one full GEMM against lower-triangle panel strips (SYRK-like, about
   (T+1)/2T of the FLOPs for T panels), fp16 inputs with fp32 output (what CudaNative.HalfGram does).
3. fp64 eigh of 4096² (the decomposition's dominant kernel)."""
import json, time
import torch

dev = torch.device("cuda")
res = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}


def timed(fn, reps=5, warm=2):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    t = time.time()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.time() - t) / reps


g = torch.Generator(device="cuda").manual_seed(0)
tokens = 32768
F = torch.nn.functional
lowrank = {}
for m, n, ranks in ((11008, 4096, (1492, 1488, 1496)), (4096, 11008, (1492, 1488)), (4096, 4096, (1024, 1020, 1028))):
    x = torch.randn(tokens, n, device=dev, generator=g).half()
    w = (torch.randn(m, n, device=dev, generator=g) * 0.02).half()
    row = {"dense_ms": 1e3 * timed(lambda: F.linear(x, w))}
    for k in ranks:
        a = (torch.randn(m, k, device=dev, generator=g) * 0.02).half()
        b = (torch.randn(k, n, device=dev, generator=g) * 0.02).half()
        row[f"k{k}_ms"] = 1e3 * timed(lambda: F.linear(F.linear(x, b), a))
    lowrank[f"{m}x{n}"] = row
    del x, w
res["lowrank_forward_32768_tokens"] = lowrank

gram = {}
for n in (4096, 11008):
    x = torch.randn(tokens, n, device=dev, generator=g).half()
    full = lambda: torch.mm(x.T, x, out_dtype=torch.float32)
    row = {"full_ms": 1e3 * timed(full)}
    ref = full()
    for panels in (2, 4, 8):
        width = n // panels
        out = torch.zeros(n, n, device=dev, dtype=torch.float32)

        def strips():
            for i in range(panels):
                lo, hi = i * width, (n if i == panels - 1 else (i + 1) * width)
                out[lo:hi, :hi] = torch.mm(x[:, lo:hi].T, x[:, :hi], out_dtype=torch.float32)
        row[f"panels{panels}_ms"] = 1e3 * timed(strips)
        strips()
        lower = torch.tril(out)
        row[f"panels{panels}_maxdiff"] = (lower - torch.tril(ref)).abs().max().item()
    gram[str(n)] = row
    del x
res["gram_32768_tokens"] = gram

s = torch.randn(4096, 4096, device=dev, dtype=torch.float64, generator=g)
s = s @ s.T
res["eigh_fp64_4096_s"] = timed(lambda: torch.linalg.eigh(s), reps=3, warm=1)
res["eigh_fp32_4096_s"] = timed(lambda: torch.linalg.eigh(s.float()), reps=3, warm=1)
print(json.dumps(res, indent=1))
