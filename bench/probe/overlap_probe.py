"""Device probe for issue 8's remaining levers (prints JSON): fp64 eigh backends (cuSOLVER, MAGMA, fp32) and the error
of chunked fp16 Grams. Run on the GPU machine:
python3 bench/probe/overlap_probe.py > probe.json"""
import json
import subprocess
import time

import torch

dev = torch.device("cuda")
out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}


def timed(fn, reps=3):
    fn()
    torch.cuda.synchronize()
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def spd(n, dtype=torch.float64):
    g = torch.randn(n, 2 * n, device=dev, dtype=torch.float32)
    a = (g @ g.T).to(dtype) / (2 * n)
    return (a + a.T) / 2


# 1. eigh backends
eigh = {}
for n in (4096, 8192):
    a = spd(n)
    for lib in ("cusolver", "magma"):
        torch.backends.cuda.preferred_linalg_library(lib)
        try:
            eigh[f"fp64 {n} {lib}"] = timed(lambda: torch.linalg.eigh(a), reps=2)
        except Exception as e:  # noqa: BLE001
            eigh[f"fp64 {n} {lib}"] = str(e)[:200]
    torch.backends.cuda.preferred_linalg_library("default")
    a32 = a.float()
    eigh[f"fp32 {n} default"] = timed(lambda: torch.linalg.eigh(a32), reps=2)
    eigh[f"cholesky fp64 {n}"] = timed(lambda: torch.linalg.cholesky(a), reps=2)
out["eigh_seconds"] = eigh

# 2. (removed) eigh on a side stream beside GEMMs: torch.linalg.eigh blocks its host thread, so issuing both from one
# Python thread runs them one after the other; the result stored in bench/results/2026-12-02-h200/overlap-probe.json
# ("overlap_seconds") came from that version and measured serial execution. The real overlap (two host threads, two
# streams) is measured by `bench gpu` with and without --set DecompositionOverlap=Off (BENCHMARKS.md).

# 3. chunked fp16 Gram accuracy (fp32 accumulation per chunk, chunks summed in fp32)
acc = {}
for n in (4096, 11008):
    xs = (torch.randn(32768, n, device=dev, dtype=torch.float32) * 0.7).half()
    ref = (xs.double().T @ xs.double())
    for chunk in (32768, 8192, 4096, 2048, 1024):
        def gram():
            g = None
            for s in range(0, 32768, chunk):
                part = torch.mm(xs[s:s + chunk].T, xs[s:s + chunk], out_dtype=torch.float32)
                g = part if g is None else g.add_(part)
            return g
        g = gram()
        err = ((g.double() - ref).norm() / ref.norm()).item()
        acc[f"{n} chunk {chunk}"] = {"rel_error": err, "seconds": timed(gram, 2)}
    del xs, ref
out["chunked_gram"] = acc

# 4. c10 stream entry points for the C# side
syms = {}
lib = torch.__file__.rsplit("/", 1)[0] + "/lib/libc10_cuda.so"
names = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True).stdout
for key in ("getStreamFromExternal", "setCurrentCUDAStream", "getCurrentCUDAStream", "getStreamFromPool"):
    syms[key] = [line.split()[-1] for line in names.splitlines() if key in line]
out["c10_cuda_symbols"] = syms
print(json.dumps(out, indent=1))
