"""Load a LowRank.Build compressed artifact into Hugging Face transformers, factorised (README: "Loading an artifact
from Python").

Every artifact carries its own transformers classes: config.json names the model_type lowrank_<family> and an
auto_map to modeling_lowrank.py in the folder (src/LowRank.Core/Artifacts/HuggingFace/modeling_lowrank.py here), so

    AutoModelForCausalLM.from_pretrained(ARTIFACT, trust_remote_code=True)

builds the model with two nn.Linear of rank k per factorised linear (quantized codes dequantized in the forward) and
loads every tensor, and a load without trust_remote_code fails. Run as a script it checks both against the
artifact's dense export:

    python3 tools/python/lowrank_artifact.py ARTIFACT DENSE_EXPORT [--prompt TEXT]

needs torch and transformers; prints the largest logit difference between the factorised model and the dense
export (both in fp32) and exits 1 when it exceeds 1e-3, or when a stock load of ARTIFACT does not fail.
tools/device/hf_parity.py is the device check against our own logits.
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def load_lowrank(folder, dtype=torch.float32):
    """The artifact's own classes, through auto_map (raises when the artifact predates them: re-run compress)."""
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    if "auto_map" not in config or "lowrank" not in config:
        raise ValueError(f"{folder}: config.json has no auto_map/lowrank section; it is not a compressed artifact of "
                         "this LowRank.Build version (re-run dotnet lowrank compress)")
    return AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, dtype=dtype).eval()


def stock_load_error(folder):
    """The error a load without trust_remote_code raises (what a user who forgets it sees), or None if it loaded."""
    try:
        AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=False)
    except Exception as error:  # transformers raises ValueError; any refusal is what we want
        return f"{type(error).__name__}: {error}"
    return None


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
    refused = stock_load_error(artifact)
    print(f"stock load without trust_remote_code: {'refused: ' + refused.splitlines()[0] if refused else 'LOADED (wrong)'}")
    return 0 if difference <= 1e-3 and refused else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
