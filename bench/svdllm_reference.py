"""A straightforward PyTorch implementation of the SVD-LLM compression step, the baseline our `bench` command is
compared with (issue 8). It does what the original SVD-LLM code does, block by block on one GPU:
  1. activation profiling: run decoder block i on the calibration hidden states one sample at a time (batch 1,
     as the original `profle_svdllm` does) with forward hooks accumulating H = X Xᵀ in fp32 for every linear;
  2. whitening: Cholesky of H in fp64 (eigenvalue shift when it fails), then fp32 `torch.linalg.svd` of W·L,
     truncation to k = floor(m·n·ρ/(m+n)), A = U_k Σ_k^½, B = Σ_k^½ V_kᵀ L⁻¹;
  3. the block's output (original weights, as in SVD-LLM's whitening profile) feeds block i+1.
Usage: python3 svdllm_reference.py MODEL_DIR --ratio 0.5 --samples 256 --seq-len 2048 [--blocks N] [--out JSON]
--blocks N stops after N decoder blocks (the full 7B run takes longer than one device command may last); the
script then reports per-block times and the extrapolation to all blocks, labelled as such."""
import argparse, json, math, os, time
import torch
from safetensors import safe_open
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding

p = argparse.ArgumentParser()
p.add_argument("model"); p.add_argument("--ratio", type=float, default=0.5)
p.add_argument("--samples", type=int, default=256); p.add_argument("--seq-len", type=int, default=2048)
p.add_argument("--blocks", type=int, default=0); p.add_argument("--seed", type=int, default=0)
p.add_argument("--out", default="")
a = p.parse_args()
dev = torch.device("cuda")
torch.manual_seed(a.seed)
cfg = LlamaConfig.from_pretrained(a.model)
cfg._attn_implementation = "sdpa"
index_path = os.path.join(a.model, "model.safetensors.index.json")
files = sorted(set(json.load(open(index_path))["weight_map"].values())) if os.path.exists(index_path) else ["model.safetensors"]
where = {}
for f in files:
    with safe_open(os.path.join(a.model, f), "pt") as h:
        for k in h.keys(): where[k] = f

def load(name):
    with safe_open(os.path.join(a.model, where[name]), "pt", device="cuda") as h:
        return h.get_tensor(name)

t_all = time.time()
torch.cuda.reset_peak_memory_stats()
times = {"load": 0.0, "profiling": 0.0, "decomposition": 0.0}
t = time.time()
emb = load("model.embed_tokens.weight")
g = torch.Generator(device="cpu").manual_seed(a.seed)
ids = torch.randint(0, cfg.vocab_size, (a.samples, a.seq_len), generator=g)
hidden = torch.nn.functional.embedding(ids.to(dev), emb).to(torch.float16)  # [N, L, d]
del emb
times["load"] += time.time() - t
rotary = LlamaRotaryEmbedding(cfg, device=dev)
pos = torch.arange(a.seq_len, device=dev).unsqueeze(0)
n_blocks = a.blocks or cfg.num_hidden_layers
per_block = []
for i in range(n_blocks):
    t = time.time()
    layer = LlamaDecoderLayer(cfg, i).to(dev, torch.float16)
    prefix = f"model.layers.{i}."
    state = {k[len(prefix):]: load(k) for k in where if k.startswith(prefix)}
    layer.load_state_dict(state); del state
    torch.cuda.synchronize(); times["load"] += time.time() - t

    t = time.time()
    grams, hooks = {}, []
    for name, mod in layer.named_modules():
        if isinstance(mod, torch.nn.Linear):
            grams[name] = torch.zeros(mod.in_features, mod.in_features, device=dev, dtype=torch.float32)
            def hook(m, inp, out, name=name):
                x = inp[0].detach().reshape(-1, inp[0].shape[-1]).float()
                grams[name] += x.T @ x
            hooks.append(mod.register_forward_hook(hook))
    out = torch.empty_like(hidden)
    with torch.no_grad():
        for s in range(a.samples):
            x = hidden[s:s + 1]
            pe = rotary(x, pos)
            r = layer(x, position_embeddings=pe, position_ids=pos)
            out[s:s + 1] = r[0] if isinstance(r, tuple) else r
    for h in hooks: h.remove()
    torch.cuda.synchronize(); t_prof = time.time() - t; times["profiling"] += t_prof

    t = time.time()
    with torch.no_grad():
        for name, mod in layer.named_modules():
            if not isinstance(mod, torch.nn.Linear): continue
            W = mod.weight.float(); m, n = W.shape
            k = int(m * n * (1 - a.ratio) / (m + n))
            H = grams.pop(name).double()
            try:
                L = torch.linalg.cholesky(H)
            except Exception:
                ev = torch.linalg.eigvalsh(H)
                H += (-ev[0] + 1e-6) * torch.eye(n, device=dev, dtype=H.dtype)
                L = torch.linalg.cholesky(H)
            U, S, Vh = torch.linalg.svd(W @ L.float(), full_matrices=False)
            Linv = torch.linalg.inv(L).float()
            sq = S[:k].sqrt()
            A = U[:, :k] * sq
            B = (sq[:, None] * Vh[:k]) @ Linv
            mod.weight.data = (A @ B).to(torch.float16)
    torch.cuda.synchronize(); t_dec = time.time() - t; times["decomposition"] += t_dec
    hidden = out
    per_block.append({"block": i, "profiling_s": round(t_prof, 2), "decomposition_s": round(t_dec, 2)})
    print(json.dumps(per_block[-1]), flush=True)
    del layer
total = time.time() - t_all
result = {"implementation": "straightforward PyTorch SVD-LLM (fp32 Gram hooks, batch 1, fp64 Cholesky, fp32 torch.linalg.svd)",
          "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "ratio": a.ratio, "samples": a.samples,
          "seq_len": a.seq_len, "blocks_run": n_blocks, "blocks_total": cfg.num_hidden_layers,
          "seconds": {k: round(v, 2) for k, v in times.items()}, "total_s_measured": round(total, 2),
          "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "per_block": per_block}
if n_blocks < cfg.num_hidden_layers:
    per = (times["profiling"] + times["decomposition"] + times["load"]) / n_blocks
    result["total_s_extrapolated_to_all_blocks"] = round(per * cfg.num_hidden_layers, 1)
print(json.dumps(result, indent=1))
if a.out:
    json.dump(result, open(a.out, "w"), indent=1)
