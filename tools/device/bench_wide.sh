#!/usr/bin/env bash
# Issue 19 on the device: every method and the ablations on the realistic-width models (train_wide.py), on the stream
# protocol of BENCHMARKS.md: calibration = Moby-Dick bytes [0, 1084497) (256 × 256 tokens, seed 42), evaluation = the
# rest (windows of 256), 32 held-out calibration samples (disjoint from the calibration windows; the number defaults
# are chosen on), two paired-cloze task files made from the evaluation text (bench tasks).
# Source .device/prologue.sh first (../shared/device/README.md); .devdata/moby-dick.txt from stage_corpora.sh.
# Usage: bash tools/device/bench_wide.sh MODELS_ROOT STEP...   (MODELS_ROOT holds llama-wide/ and opt-wide/)
# Steps:  table    every method at CR 0.2/0.4/0.6 on both models (perplexity, held-out perplexity, task accuracy)
#         ablate   the ablations (ABLATIONS=core|full) at ABLATION_RATIOS (default 0.6) on both models, each row with
#                  the diagnosis (--diagnose)
#         table-MODEL / ablate-MODEL   the same for one model (llama-wide or opt-wide)
# Results: $OUT/wide-results.tar.gz (one file: the device returns at most 8), and the tables on stdout.
set -uo pipefail
root=${1:?usage: bench_wide.sh MODELS_ROOT STEP...}; shift
out=${OUT:-out}; mkdir -p "$out/wide"
L=${LRK_DLL:-.device/LowRank.Tool/dotnet-lowrank.dll}  # not LOWRANK_*: the tool reads those as configuration
moby=.devdata/moby-dick.txt
# SAMPLES, HELD_OUT and EVAL_END exist for a quick CPU smoke test of this script (DEVICE=cpu, a small stand-in model).
common=(--calib "$moby" --calib-end 1084497 --eval "$moby" --eval-start 1084497 ${EVAL_END:+--eval-end "$EVAL_END"} --samples "${SAMPLES:-256}" --seq-len 256 --window 256
        --held-out "${HELD_OUT:-32}" --device "${DEVICE:-cuda}")
if [ ! -f "$out/wide/tasks/moby_word.jsonl" ]; then
  dotnet $L bench tasks --text "$moby" --text-start 1084497 --name moby --out "$out/wide/tasks" || exit 1
fi
tasks=(--tasks "$out/wide/tasks/moby_sentence.jsonl" "$out/wide/tasks/moby_word.jsonl")
# The ablations (issue 19's diagnosis): each isolates one design choice of AdaSVD or LC-SVD. ABLATIONS=core (default:
# 7 rows, CR 0.6 unless ABLATION_RATIOS says otherwise) keeps the device time down; ABLATIONS=full adds the rest.
ablations=(
  --variant "SVD-LLM=svd-llm"
  --variant "SVD-LLM compressed-propagation=svd-llm;Propagation=Compressed"
  --variant "AdaSVD=adasvd"
  --variant "AdaSVD uniform (no adaCR)=adasvd;AdaSvdAdaptiveRatio=false"
  --variant "AdaSVD 0 rounds=adasvd;AdaSvdIterations=0"
  --variant "LC-SVD=lc-svd"
  --variant "LC-SVD no rank search=lc-svd;LcSvdRankSearch=false"
)
[ "${ABLATIONS:-core}" = full ] && ablations+=(
  --variant "AdaSVD 3 rounds=adasvd;AdaSvdIterations=3"
  --variant "AdaSVD compressed whitening=adasvd;AdaSvdWhitening=Compressed"
  --variant "AdaSVD original propagation (SVD-LLM + adaCR)=adasvd;Propagation=Original"
  --variant "AdaSVD target W·x_orig=adasvd;AdaSvdTarget=Original"
  --variant "AdaSVD stack-of-batch 4=adasvd;AdaSvdBucketSize=4"
  --variant "AdaSVD gap 0.1=adasvd;AdaSvdRetentionGap=0.1"
  --variant "LC-SVD no guard=lc-svd;LcSvdGuard=false"
  --variant "LC-SVD ridge 0.01=lc-svd;LcSvdRidge=0.01"
)
for step in "$@"; do
  case $step in
    table|ablate) models=(llama-wide opt-wide); kind=$step ;;
    table-*|ablate-*) models=("${step#*-}"); kind=${step%%-*} ;;
    *) echo "unknown step $step"; continue ;;
  esac
  for m in "${models[@]}"; do
    echo "=== $kind $m $(date -u +%H:%M:%S)"
    if [ "$kind" = table ]; then
      dotnet $L bench methods "$root/$m" --methods all --ratios 0.2,0.4,0.6 "${common[@]}" "${tasks[@]}" \
        --markdown "$out/wide/table-$m.md" --json > "$out/wide/table-$m.json" 2> "$out/wide/table-$m.log"
    else
      dotnet $L bench methods "$root/$m" --methods none "${ablations[@]}" --ratios "${ABLATION_RATIOS:-0.6}" --diagnose "${common[@]}" \
        --markdown "$out/wide/ablate-$m.md" --json > "$out/wide/ablate-$m.json" 2> "$out/wide/ablate-$m.log"
    fi
    echo "=== $kind $m rc=$? $(date -u +%H:%M:%S)"
    cat "$out/wide/$kind-$m.md" 2>/dev/null || tail -5 "$out/wide/$kind-$m.log"
  done
done
tar -czf "$out/wide-results.tar.gz" -C "$out" wide && rm -rf "$out/wide"
