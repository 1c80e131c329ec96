#!/usr/bin/env bash
# The GPU benchmark runs behind BENCHMARKS.md (issue 8), for the device machine: source .device/prologue.sh first
# (../shared/device/README.md). Usage: bash tools/device/gpu_bench.sh STEP... ; results go to $OUT (or ./out).
# Steps: stream-check, probe, kernels, 7b, 7b-serial (no decomposition overlap), 13b, 7b-adasvd, 7b-adasvd-perblock, baseline, 70b,
# moby-cuda. Each step runs even if an earlier one failed.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
L=.device/LowRank.Tool/dotnet-lowrank.dll
work=/tmp/lowrank-bench
for step in "$@"; do
  echo "=== $step $(date -u +%H:%M:%S)"
  case $step in
    stream-check)
      # Block streaming (weights moved on the copy stream) must not change a result: the same compression with the
      # model resident and streamed, evaluated after; the two perplexities are printed side by side.
      for sb in off on; do
        dotnet $L compress models/llama-moby --method adasvd --ratio 0.4 --calib .devdata/moby-dick.txt --calib-end 1084497 --samples 64 --seq-len 256 \
          --eval .devdata/moby-dick.txt --eval-start 1084497 --device cuda --dtype fp16 --stream-blocks $sb --out /tmp/lrk-check-$sb --force --json \
          > "$out/stream-check-$sb.json" 2> "$out/stream-check-$sb.log"
      done
      python3 -c "import json; [print('stream-blocks', s, {k: json.load(open(f'$out/stream-check-{s}.json'))[k] for k in ('perplexityBefore', 'perplexityAfter')}) for s in ('off', 'on')]" ;;
    probe)
      python3 bench/probe/lowrank_probe.py > "$out/probe.json" 2> "$out/probe.err" ;;
    kernels)
      dotnet $L doctor --device cuda > "$out/doctor.txt" 2>&1
      dotnet $L bench kernels --device cuda --json > "$out/kernels.json" 2> "$out/kernels.err" ;;
    7b)
      dotnet $L bench gpu --shape 7b --work $work --device cuda --output "$out/7b-svdllm.json" > /dev/null 2> "$out/7b-svdllm.log" ;;
    7b-serial)
      dotnet $L bench gpu --shape 7b --set DecompositionOverlap=Off --accuracy none --work $work --device cuda --output "$out/7b-svdllm-serial.json" > /dev/null 2> "$out/7b-svdllm-serial.log" ;;
    13b)
      dotnet $L bench gpu --shape 13b --no-write --accuracy none --work $work --device cuda --output "$out/13b-svdllm.json" > /dev/null 2> "$out/13b-svdllm.log" ;;
    7b-adasvd)
      # Written like the SVD-LLM run (streamed shards), so the two end-to-end times compare like for like.
      dotnet $L bench gpu --shape 7b --method adasvd --accuracy none --work $work --device cuda --output "$out/7b-adasvd.json" > /dev/null 2> "$out/7b-adasvd.log" ;;
    7b-adasvd-perblock)
      dotnet $L bench gpu --shape 7b --method adasvd --set AdaSvdOriginalPass=PerBlock --no-write --accuracy none --work $work --device cuda --output "$out/7b-adasvd-perblock.json" > /dev/null 2> "$out/7b-adasvd-perblock.log" ;;
    baseline)
      PYTHONUNBUFFERED=1 python3 bench/svdllm_reference.py $work/llama-7b-32l-seed1234 --blocks "${BASELINE_BLOCKS:-1}" --out "$out/7b-baseline.json" > "$out/7b-baseline.log" 2>&1 ;;
    70b)
      dotnet $L bench gpu --shape 70b --samples "${SAMPLES_70B:-256}" --no-write --checkpoint staged --accuracy q_proj --work $work --device cuda --output "$out/70b-svdllm.json" > /dev/null 2> "$out/70b-svdllm.log" ;;
    moby-cuda)
      for m in ${MOBY_MODELS:-opt-moby gpt2-moby}; do
        timeout "${MOBY_TIMEOUT:-900}" dotnet $L bench methods models/$m --calib .devdata/moby-dick.txt --calib-end 1084497 --eval .devdata/moby-dick.txt --eval-start 1084497 \
          --samples 256 --seq-len 256 --window 256 --device cuda --json > "$out/methods-$m-cuda.json" 2> "$out/methods-$m-cuda.log"
      done ;;
    *) echo "unknown step $step" ;;
  esac
  echo "=== $step done rc=$? $(date -u +%H:%M:%S)"
  tail -3 "$out"/*.log 2>/dev/null | tail -12
done
