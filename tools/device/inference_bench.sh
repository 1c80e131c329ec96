#!/usr/bin/env bash
# The GPU half of BENCHMARKS.md's inference table (issue 14), for the device machine. Pack first, here:
#   ../shared/device/pack.sh src/LowRank.Tool/LowRank.Tool.csproj
# then run on the device with carry [".device"]:
#   source .device/prologue.sh && bash tools/device/inference_bench.sh
# Synthesises the LLaMA-2-7B shape with random fp16 weights (speed does not depend on the values), dense and with
# every block linear factorised at each ratio, and measures TorchSharp fp16 on CUDA: bytes on disk, peak GPU memory
# (nvidia-smi), prefill tokens/s (512 tokens) and decode tokens/s at batch 1 and 16. ONNX Runtime's CUDA provider is
# tried too; the CPU-only ONNX Runtime package the tool carries reports it unavailable (the CUDA package's natives do
# not fit the 64 MiB carry). Results: $OUT/inference-7b-cuda.json and the log beside it.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
L=.device/LowRank.Tool/dotnet-lowrank.dll
work=${WORK:-/tmp/lowrank-inference}
dotnet $L bench inference --shape 7b --ratios "${RATIOS:-0.2,0.4,0.5,0.6}" --runtimes torch,onnx --device cuda --dtype fp16 \
  --prefill 512 --batches 1,16 --steps 32 --work "$work" --output "$out/inference-7b-cuda.json" --progress none 2>&1 | tee "$out/inference-7b-cuda.log"
