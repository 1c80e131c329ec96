"""Creates the HF-parity fixtures under tests/fixtures/parity/<name>/ (run on the GPU machine, which has
transformers; nothing is downloaded): small randomly initialised models of each supported family, saved with
save_pretrained (safetensors, fp32), and reference logits for fixed token ids computed by transformers on CPU
in fp32 (eager attention). Each fixture stays well under 2 MiB.

Usage: python3 make_parity_fixtures.py OUT_DIR [--cuda-check]"""
import json, os, sys
import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, OPTConfig, OPTForCausalLM, GPT2Config, GPT2LMHeadModel)

out_root = sys.argv[1]
torch.manual_seed(0)
V, D, L, H = 256, 64, 2, 4
common = dict(vocab_size=V, hidden_size=D, num_hidden_layers=L, num_attention_heads=H, intermediate_size=112,
              max_position_embeddings=128, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)

def llama3_cfg():
    c = dict(common, num_key_value_heads=2, rope_theta=500000.0, tie_word_embeddings=True)
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16}
    try:
        return LlamaConfig(**c, rope_scaling=scaling)
    except Exception:
        return LlamaConfig(**c, rope_parameters=dict(scaling, rope_theta=500000.0))

families = {
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**common, num_key_value_heads=H)),
    "llama3": lambda: LlamaForCausalLM(llama3_cfg()),
    "mistral": lambda: MistralForCausalLM(MistralConfig(**common, num_key_value_heads=2, sliding_window=8)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**common, num_key_value_heads=2, use_sliding_window=False)),
    "opt": lambda: OPTForCausalLM(OPTConfig(vocab_size=V, hidden_size=D, num_hidden_layers=L, num_attention_heads=H,
                                            ffn_dim=128, max_position_embeddings=128, word_embed_proj_dim=D,
                                            bos_token_id=2, eos_token_id=2, pad_token_id=1)),
    "gpt2": lambda: GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=D, n_layer=L, n_head=H, n_positions=128,
                                               bos_token_id=0, eos_token_id=0)),
}
g = torch.Generator().manual_seed(1234)
ids = torch.randint(3, V, (2, 24), generator=g)
ids[:, 0] = 1
summary = {"transformers": transformers.__version__, "torch": torch.__version__, "fixtures": {}}
for name, make in families.items():
    try:
        torch.manual_seed(hash(name) % 1000)
        model = make()
        # random init of norms/biases too, so a forward pass that skipped them would not match
        with torch.no_grad():
            for p_name, p in model.named_parameters():
                if p.dim() == 1:
                    p.copy_(1.0 + 0.1 * torch.randn_like(p) if ("norm" in p_name or "ln" in p_name) and p_name.endswith("weight") else 0.05 * torch.randn_like(p))
        model.config._attn_implementation = "eager"
        model = model.float().eval()
        folder = os.path.join(out_root, name)
        model.save_pretrained(folder, safe_serialization=True)
        with torch.no_grad():
            logits = model(input_ids=ids).logits.float()
        ref = {"input_ids": ids.tolist(), "shape": list(logits.shape), "logits": [round(x, 7) for x in logits.flatten().tolist()],
               "transformers": transformers.__version__, "torch": torch.__version__, "dtype": "float32", "device": "cpu"}
        if torch.cuda.is_available():
            with torch.no_grad():
                cl = model.cuda()(input_ids=ids.cuda()).logits.float().cpu()
            ref["cuda_max_abs_diff_vs_cpu"] = float((cl - logits).abs().max())
            model.cpu()
        with open(os.path.join(folder, "reference.json"), "w") as f:
            json.dump(ref, f)
        size = sum(os.path.getsize(os.path.join(folder, x)) for x in os.listdir(folder))
        summary["fixtures"][name] = {"bytes": size, "params": sum(p.numel() for p in model.parameters())}
    except Exception as e:
        summary["fixtures"][name] = {"error": repr(e)}
print(json.dumps(summary, indent=1))
with open(os.path.join(out_root, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
