"""Load a LowRank.Build compressed artifact into Hugging Face transformers, factorised (README: "Loading an
artifact from Python"). Quantized artifacts (format version 2: int8/int4/int3 factors, or the rtn/gptq baselines'
quantized weights) are dequantized on load by the README's rule ("Quantized tensors"). Run as a script it checks an
artifact against its dense export:

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


def unpack(packed, bits):
    """uint8 [..., n] -> codes [..., n*8/bits]: each byte run is a little-endian bit stream, code i in bits [i*b, i*b+b)."""
    shifts = torch.arange(8, dtype=torch.uint8)
    stream = ((packed.unsqueeze(-1) >> shifts) & 1).reshape(*packed.shape[:-1], -1, bits).to(torch.int64)
    return (stream << torch.arange(bits)).sum(-1)


def dequantize(state, prefix, fmt, rows, cols):
    """The float matrix [rows, cols] stored as <prefix>.qweight/.scales/.qzeros in format fmt (int8, intB-gG[-zp])."""
    codes = state.pop(prefix + ".qweight")
    scales = state.pop(prefix + ".scales").to(torch.float64)
    zeros = state.pop(prefix + ".qzeros", None)
    if fmt == "int8":
        return codes.to(torch.float64) * scales.unsqueeze(1)
    bits, group = int(fmt[3]), int(fmt.split("-g")[1].split("-")[0])
    groups = scales.shape[1]
    values = unpack(codes, bits).reshape(rows, groups, group).to(torch.float64)
    if zeros is None:
        zero = torch.full((rows, groups), float(1 << (bits - 1)), dtype=torch.float64)
    else:
        # Each row's zero points: ceil(groups*bits/8) bytes; pad to whole codes before unpacking.
        whole = torch.nn.functional.pad(zeros, (0, (-zeros.shape[1]) % bits))
        zero = unpack(whole, bits)[:, :groups].to(torch.float64)
    return ((values - zero.unsqueeze(2)) * scales.unsqueeze(2)).reshape(rows, groups * group)[:, :cols]


def load_lowrank(folder, dtype=torch.float32):
    with open(os.path.join(folder, "config.json")) as f:
        lowrank = json.load(f)["lowrank"]
    quantized = lowrank.get("quantization", {}).get("linears", {})
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
    for name, info in quantized.items():
        fmt, rows, cols = info["format"], info["out_features"], info["in_features"]
        if name in lowrank["truncation_ranks"]:
            rank = lowrank["truncation_ranks"][name]
            state[name + ".lowrank_B.weight"] = dequantize(state, name + ".lowrank_B", fmt, rank, cols)
            state[name + ".lowrank_A.weight"] = dequantize(state, name + ".lowrank_A", fmt, rows, rank)
        else:
            weight = dequantize(state, name, fmt, rows, cols)  # stored [out, in] for every family
            module = model.get_submodule(name)
            state[name + ".weight"] = weight if isinstance(module, nn.Linear) else weight.t()  # GPT-2 Conv1D: [in, out]
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
