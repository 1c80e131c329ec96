"""Hugging Face loads our compressed artifacts right, or not at all (issue 18); run on the device machine, which has
torch and transformers (the build machine has neither).

For each case below (the LLaMA and GPT-2 parity fixtures of tests/fixtures/parity, compressed by our tool):
  1. `dotnet lowrank compress` writes the artifact (plain SVD: no calibration text needed);
  2. transformers loads it with AutoModelForCausalLM.from_pretrained(ARTIFACT, trust_remote_code=True) (the
     artifact's own modeling_lowrank.py) in fp32 with eager attention, on the CPU, and its logits for the fixture's
     input ids are written as reference.json beside a copy of the artifact under WORK/parity/<case>/;
  3. `dotnet lowrank bench parity WORK/parity` computes OUR logits on the same artifacts and compares them with
     transformers' (max |difference| <= 1e-4, the parity tolerance of tests/LowRank.Bench.Tests/HfParityTests.cs),
     on the CPU and, where there is one, on CUDA;
  4. a stock load (no trust_remote_code, and trust_remote_code=False) must raise, not load;
  5. the dense export (`dotnet lowrank export --dense`) loads with stock transformers and gives the same logits as
     the factorised model (same tolerance; fp32 factors multiply exactly enough).

Usage, from the repository root (tools/device/README: .device/ comes from ../shared/device/pack.sh here):
  source .device/prologue.sh && python3 tools/device/hf_parity.py --tool .device/LowRank.Tool/dotnet-lowrank.dll --out "$OUT"
Prints one line per check and a JSON summary (also written to OUT/hf_parity.json); exits 1 when any check fails.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

TOLERANCE = 1e-4
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))
from lowrank_artifact import load_lowrank, stock_load_error  # noqa: E402

# (case, fixture, compress arguments). The parity fixtures carry no tokenizer, so there is no calibration text: the
# quantized cases round their factors to nearest (FactorQuantizer=Rtn) instead of GPTQ, which needs data; the stored
# layout that transformers must read is the same.
CASES = [
    ("llama-svd", "llama", ["--method", "svd", "--ratio", "0.5", "--factor-dtype", "fp32"]),
    ("gpt2-svd", "gpt2", ["--method", "svd", "--ratio", "0.5", "--factor-dtype", "fp32"]),
    ("llama-svd-int8", "llama", ["--method", "svd", "--ratio", "0.5", "--factor-dtype", "int8", "--set", "FactorQuantizer=Rtn"]),
    ("gpt2-svd-int4", "gpt2", ["--method", "svd", "--ratio", "0.5", "--factor-dtype", "int4-g32", "--set", "FactorQuantizer=Rtn"]),
]


def tool(args, dll):
    command = ["dotnet", dll] + args
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {run.returncode}:\n{run.stdout}\n{run.stderr}")
    return run.stdout


def hf_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids)).logits.float()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True, help="dotnet-lowrank.dll")
    parser.add_argument("--out", default="out")
    parser.add_argument("--work", default="/tmp/lowrank-hf-parity")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    shutil.rmtree(args.work, ignore_errors=True)
    parity = os.path.join(args.work, "parity")
    os.makedirs(parity)
    summary = {"transformers": transformers.__version__, "torch": torch.__version__, "tolerance": TOLERANCE, "cases": {}}
    failed = []

    for case, fixture, compress in CASES:
        source = os.path.join(ROOT, "tests", "fixtures", "parity", fixture)
        artifact = os.path.join(args.work, case)
        result = {}
        summary["cases"][case] = result
        try:
            tool(["compress", source, *compress, "--device", "cpu", "--out", artifact, "--force", "--json"], args.tool)
            with open(os.path.join(source, "reference.json")) as f:
                reference = json.load(f)
            ids = reference["input_ids"]
            config = json.load(open(os.path.join(artifact, "config.json")))
            result["model_type"] = config["model_type"]
            result["architectures"] = config["architectures"]

            model = load_lowrank(artifact)
            model.config._attn_implementation = "eager"
            logits = hf_logits(model, ids)
            dense_reference = torch.tensor(reference["logits"]).reshape(reference["shape"])
            result["hf_vs_uncompressed_max_abs"] = (logits - dense_reference).abs().max().item()  # > 0: it was compressed
            result["factorised_modules"] = sum(1 for m in model.modules() if type(m).__name__ in ("LowRankLinear", "QuantizedLinear"))

            folder = os.path.join(parity, case)
            shutil.copytree(artifact, folder)
            with open(os.path.join(folder, "reference.json"), "w") as f:
                json.dump({"input_ids": ids, "shape": list(logits.shape), "logits": logits.flatten().tolist(),
                           "transformers": transformers.__version__, "torch": torch.__version__, "dtype": "float32",
                           "device": "cpu", "loaded_with": "AutoModelForCausalLM.from_pretrained(trust_remote_code=True)"}, f)

            refusals = {}
            for label, kwargs in (("default", {}), ("trust_remote_code=False", {"trust_remote_code": False})):
                try:
                    AutoModelForCausalLM.from_pretrained(artifact, **kwargs)
                    refusals[label] = None
                except Exception as error:
                    refusals[label] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            result["stock_load"] = refusals
            if any(v is None for v in refusals.values()) or stock_load_error(artifact) is None:
                failed.append(f"{case}: a stock load did not fail")

            dense = os.path.join(args.work, case + "-dense")
            tool(["export", artifact, "--dense", "--dtype", "fp32", "--out", dense, "--force"], args.tool)
            stock = AutoModelForCausalLM.from_pretrained(dense, dtype=torch.float32, attn_implementation="eager").eval()
            result["dense_export_vs_factorised_max_abs"] = (hf_logits(stock, ids) - logits).abs().max().item()
            if not result["dense_export_vs_factorised_max_abs"] <= TOLERANCE:
                failed.append(f"{case}: the dense export's logits differ from the factorised model's by {result['dense_export_vs_factorised_max_abs']:.3e}")
        except Exception as error:
            result["error"] = f"{type(error).__name__}: {error}"
            failed.append(f"{case}: {result['error']}")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        run = subprocess.run(["dotnet", args.tool, "bench", "parity", parity, "--device", device, "--json"], capture_output=True, text=True)
        try:
            ours = json.loads(run.stdout)["results"]
        except (ValueError, KeyError):
            failed.append(f"bench parity --device {device} exited {run.returncode}: {run.stderr.strip()[-2000:]}")
            continue
        for row in ours:
            case = summary["cases"].setdefault(row["fixture"], {})
            case[f"ours_{device}_vs_hf_max_abs"] = row["maxAbsDiff"]
            if not row["maxAbsDiff"] <= TOLERANCE:
                failed.append(f"{row['fixture']}: our logits ({device}) differ from transformers' by {row['maxAbsDiff']:.3e} (tolerance {TOLERANCE:.0e})")

    summary["failed"] = failed
    for case, result in summary["cases"].items():
        print(case, json.dumps(result))
    print("FAILED:" if failed else "all checks passed", *failed, sep="\n  ")
    with open(os.path.join(args.out, "hf_parity.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
