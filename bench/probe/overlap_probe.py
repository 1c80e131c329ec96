"""Device probe for issue 8's remaining levers (prints JSON): fp64 eigh backends, eigh on a side stream overlapping
fp16 GEMM work on the default stream, and the error of chunked fp16 Grams. Run on the GPU machine:
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

# 2. overlap: 7 fp64 eigh 4096 on a side stream while the default stream runs fp16 GEMMs (a block's forward).
x = torch.randn(32768, 4096, device=dev, dtype=torch.float16)
w = torch.randn(4096, 11008, device=dev, dtype=torch.float16) * 0.02
mats = [spd(4096) for _ in range(7)]


def gemms():
    for _ in range(40):
        torch.mm(x, w)


def eighs():
    for m in mats:
        torch.linalg.eigh(m)


overlap = {"gemm_alone": timed(gemms, 2), "eigh_alone": timed(eighs, 2)}
for prio in (0, -1):
    side = torch.cuda.Stream(priority=prio)

    def both():
        torch.cuda.synchronize()
        with torch.cuda.stream(side):
            eighs()
        gemms()

    overlap[f"both_priority{prio}"] = timed(both, 2)
out["overlap_seconds"] = overlap
del x, w, mats

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
