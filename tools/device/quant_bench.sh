#!/usr/bin/env bash
# Issue 15's size-vs-quality curves on the GPU machine, for models too slow for the 2-core build machine (the
# realistic-width ones made by tools/device/train_wide.py). Source .device/prologue.sh first (../shared/device/README.md).
# Usage: bash tools/device/quant_bench.sh MODEL_DIR...   (e.g. $OUT/wide/llama-wide $OUT/wide/opt-wide)
# For each model: `dotnet lowrank bench quant` — dense fp16; RTN and GPTQ at 8/4/3 bits; SVD-LLM, AdaSVD and LC-SVD at
# CR 0.2/0.4/0.6 with fp16, int8 and int4 (g32, zero points) factors; --target-bits 3, 4 and GPTQ 3-bit's size —
# calibrated on the first 90% of Moby-Dick (256 × 256 tokens), scored on the last 10% in windows of 256.
# Writes $OUT/quant-<model>.json, .md (the table and the goals, met or missed) and .png (perplexity vs bytes).
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
L=.device/LowRank.Tool/dotnet-lowrank.dll
for model in "$@"; do
  name=$(basename "$model")
  echo "=== $name $(date -u +%H:%M:%S)"
  timeout "${QUANT_TIMEOUT:-1500}" dotnet $L bench quant "$model" --calib .devdata/moby-dick.txt --calib-end 1084497 \
    --eval .devdata/moby-dick.txt --eval-start 1084497 --samples 256 --seq-len 256 --window 256 \
    --factor-dtypes fp16,int8,int4-g32 --device cuda --report "$out" > /dev/null 2> "$out/quant-$name.log"
  echo "=== $name done rc=$? $(date -u +%H:%M:%S)"
  tail -4 "$out/quant-$name.md" 2>/dev/null
done
