"""Micro-measurements on the GPU machine that decide the CUDA pipeline's kernels (issue 8): Gram precision and speed,
eigh/Cholesky cost, stream overlap, block forward cost, copy and disk bandwidth. Prints one JSON object."""
import json, os, time, subprocess
import torch
dev = torch.device("cuda")
res = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
def timed(fn, reps=3, warm=1):
    for _ in range(warm): fn()
    torch.cuda.synchronize(); t = time.time()
    for _ in range(reps): fn()
    torch.cuda.synchronize(); return (time.time() - t) / reps

# 1. Gram of fp16 activations, [32768 tokens, n]: fp32, tf32, fp16->fp32 (out_dtype) vs fp64 truth
g = torch.Generator(device="cuda").manual_seed(0)
for n in (4096, 11008):
    x = (torch.randn(32768, n, device=dev, generator=g) * torch.rand(n, device=dev, generator=g) * 3).half()
    ref = (x.double().T @ x.double())
    def rel(h): return ((h.double() - ref).norm() / ref.norm()).item()
    out = {}
    torch.backends.cuda.matmul.allow_tf32 = False
    x32 = x.float()
    out["fp32_s"] = timed(lambda: x32.T @ x32); out["fp32_rel"] = rel(x32.T @ x32)
    torch.backends.cuda.matmul.allow_tf32 = True
    out["tf32_s"] = timed(lambda: x32.T @ x32); out["tf32_rel"] = rel(x32.T @ x32)
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        h = torch.mm(x.T, x, out_dtype=torch.float32)
        out["fp16_outfp32_s"] = timed(lambda: torch.mm(x.T, x, out_dtype=torch.float32)); out["fp16_outfp32_rel"] = rel(h)
    except Exception as e:
        out["fp16_outfp32_error"] = str(e)[:200]
    out["fp16_s"] = timed(lambda: x.T @ x); out["fp16_rel"] = rel(x.T @ x)
    xb = x.bfloat16(); out["bf16_rel_inputs_rounded"] = rel(xb.float().T @ xb.float())
    out["fp64_s"] = timed(lambda: x.double().T @ x.double(), reps=1)
    res[f"gram_{n}"] = out
    del x, x32, ref

# 2. eigh / cholesky / svd costs
for n in (1024, 4096, 8192):
    a = torch.randn(n, n, device=dev, dtype=torch.float64, generator=None)
    h = a @ a.T + n * torch.eye(n, device=dev, dtype=torch.float64)
    d = {}
    d["eigh_fp64_s"] = timed(lambda: torch.linalg.eigh(h), reps=2)
    h32 = h.float(); d["eigh_fp32_s"] = timed(lambda: torch.linalg.eigh(h32), reps=2)
    d["cholesky_fp64_s"] = timed(lambda: torch.linalg.cholesky(h), reps=3)
    d["gemm_fp64_s"] = timed(lambda: h @ h, reps=3)
    try:
        torch.backends.cuda.preferred_linalg_library("magma")
        d["eigh_fp64_magma_s"] = timed(lambda: torch.linalg.eigh(h), reps=2)
        torch.backends.cuda.preferred_linalg_library("cusolver")
        d["eigh_fp64_cusolver_s"] = timed(lambda: torch.linalg.eigh(h), reps=2)
    except Exception as e:
        d["magma_error"] = str(e)[:200]
    torch.backends.cuda.preferred_linalg_library("default")
    if n == 4096:
        hb = torch.stack([h, h, h, h])
        d["eigh_fp64_batch4_s"] = timed(lambda: torch.linalg.eigh(hb), reps=1)
        # accuracy of fp32 eigh top-k projector vs fp64 (what a fp32 kernel would do to A·B)
        w, v = torch.linalg.eigh(h); w32, v32 = torch.linalg.eigh(h32)
        k = 1024; P = v[:, -k:] @ v[:, -k:].T; P32 = v32[:, -k:].double() @ v32[:, -k:].double().T
        m = a  # a matrix in the same basis
        d["fp32_eigh_projection_rel_err"] = ((P32 @ m - P @ m).norm() / (P @ m).norm()).item()
    res[f"linalg_{n}"] = d
    del a, h, h32

# 3. overlap: eigh 4096 fp64 on a side stream while fp16 GEMMs run on the main stream
n = 4096
a = torch.randn(n, n, device=dev, dtype=torch.float64); h = a @ a.T + n * torch.eye(n, device=dev, dtype=torch.float64)
x = torch.randn(32768, 4096, device=dev).half(); w = torch.randn(11008, 4096, device=dev).half()
def gemms():
    for _ in range(20): y = x @ w.T
def eighs():
    for _ in range(3): torch.linalg.eigh(h)
t_g = timed(gemms, reps=1); t_e = timed(eighs, reps=1)
side = torch.cuda.Stream()
torch.cuda.synchronize(); t = time.time()
with torch.cuda.stream(side): eighs()
gemms()
torch.cuda.synchronize(); t_both = time.time() - t
res["overlap"] = {"gemms_s": t_g, "eighs_s": t_e, "concurrent_s": t_both, "serial_s": t_g + t_e}

# 4. LLaMA-7B block forward, fp16, batch 16 x 2048 (SDPA), and 70B-shape block
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding
for name, cfg in {"7b": LlamaConfig(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32),
                  "70b": LlamaConfig(hidden_size=8192, intermediate_size=28672, num_attention_heads=64, num_key_value_heads=8)}.items():
    cfg._attn_implementation = "sdpa"
    layer = LlamaDecoderLayer(cfg, 0).to(dev, torch.float16)
    rot = LlamaRotaryEmbedding(cfg, device=dev)
    hs = torch.randn(16, 2048, cfg.hidden_size, device=dev).half(); pos = torch.arange(2048, device=dev).unsqueeze(0)
    pe = rot(hs, pos)
    with torch.no_grad():
        res[f"block_forward_{name}_b16x2048_s"] = timed(lambda: layer(hs, position_embeddings=pe, position_ids=pos), reps=3)
    del layer, hs

# 5. copies
big = torch.empty(2**30, dtype=torch.uint8)  # 1 GiB pageable
pin = torch.empty(2**30, dtype=torch.uint8).pin_memory()
gbuf = torch.empty(2**30, dtype=torch.uint8, device=dev)
res["h2d_pageable_GBps"] = 1.074 / timed(lambda: gbuf.copy_(big), reps=3)
res["h2d_pinned_GBps"] = 1.074 / timed(lambda: gbuf.copy_(pin), reps=3)
res["d2h_pageable_GBps"] = 1.074 / timed(lambda: big.copy_(gbuf), reps=3)
# 6. disk
t = time.time(); subprocess.run("dd if=/dev/zero of=/tmp/ddtest bs=16M count=256 conv=fsync status=none", shell=True); res["disk_write_fsync_GBps"] = 4.29 / (time.time() - t)
subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True)
t = time.time(); subprocess.run("dd if=/tmp/ddtest of=/dev/null bs=16M status=none", shell=True); res["disk_read_cold_GBps"] = 4.29 / (time.time() - t)
os.remove("/tmp/ddtest")
res["df"] = subprocess.run("df -h /tmp / | tail -2", shell=True, capture_output=True, text=True).stdout
res["nproc"] = os.cpu_count()
res["meminfo"] = open("/proc/meminfo").read().split("\n")[:3]
print(json.dumps(res, indent=1))
