"""Load a LowRank.Build compressed artifact into Hugging Face transformers, factorised (README: "Loading an
artifact from Python"). Run as a script it checks an artifact against its dense export:

    python3 tools/python/lowrank_artifact.py ARTIFACT DENSE_EXPORT [--prompt TEXT]

needs torch, transformers and safetensors; prints the largest logit difference between the factorised model and
the dense export (both in fp32) and exits 1 when it exceeds 1e-3.
"""
import json
import os
import sys

import torch
from torch import nn
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


class LowRankLinear(nn.Module):
    """y = A (B x) + b with the artifact's factors A [out, k] and B [k, in]; stands in for nn.Linear (or GPT-2's Conv1D)."""

    def __init__(self, in_features, out_features, rank, bias):
        super().__init__()
        self.lowrank_B = nn.Linear(in_features, rank, bias=False)   # weight [k, in]  = <linear>.lowrank_B.weight
        self.lowrank_A = nn.Linear(rank, out_features, bias=False)  # weight [out, k] = <linear>.lowrank_A.weight
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None  # <linear>.bias

    def forward(self, x):
        y = self.lowrank_A(self.lowrank_B(x))
        return y if self.bias is None else y + self.bias


def load_lowrank(folder, dtype=torch.float32):
    with open(os.path.join(folder, "config.json")) as f:
        lowrank = json.load(f)["lowrank"]
    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForCausalLM.from_config(config).to(dtype)
    for name, rank in lowrank["truncation_ranks"].items():
        parent_name, child = name.rsplit(".", 1)
        parent = model.get_submodule(parent_name)
        dense = getattr(parent, child)
        if isinstance(dense, nn.Linear):
            in_features, out_features = dense.in_features, dense.out_features
        else:  # GPT-2 Conv1D keeps its weight as [in, out]
            in_features, out_features = dense.weight.shape
        setattr(parent, child, LowRankLinear(in_features, out_features, rank, dense.bias is not None).to(dtype))
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    state = {}
    for file in files:
        state.update(load_file(os.path.join(folder, file)))
    missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    model.tie_weights()
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if unexpected or set(missing) - tied:
        raise ValueError(f"{folder}: unexpected tensors {unexpected}, missing tensors {sorted(set(missing) - tied)}")
    return model.eval()


def main(argv):
    artifact, dense = argv[1], argv[2]
    prompt = argv[argv.index("--prompt") + 1] if "--prompt" in argv else "Call me Ishmael. Some years ago, never mind how long precisely"
    tokenizer = AutoTokenizer.from_pretrained(artifact)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    factorised = load_lowrank(artifact)
    reference = AutoModelForCausalLM.from_pretrained(dense, dtype=torch.float32).eval()
    with torch.no_grad():
        difference = (factorised(ids).logits - reference(ids).logits).abs().max().item()
    print(f"max |logits(factorised) - logits(dense export)| = {difference:.3e} over {ids.shape[1]} tokens")
    return 0 if difference <= 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
