#!/usr/bin/env bash
# Runs gpu_bench.sh steps detached (setsid) so they outlive one device command; results land in /tmp/lowrank-results,
# progress in /tmp/lowrank-results/background.log, and a file 'finished' when all steps are done.
# Usage: bash tools/device/gpu_background.sh STEP...   then later: bash tools/device/gpu_background.sh --wait SECONDS
set -uo pipefail
res=/tmp/lowrank-results
if [ "${1:-}" = "--wait" ]; then
  end=$((SECONDS + ${2:-500}))
  while [ ! -f $res/finished ] && [ $SECONDS -lt $end ]; do sleep 5; done
  tail -4 $res/background.log; ls $res; exit 0
fi
mkdir -p $res
# A later device command re-sends the working tree into the checkout; run from a private copy so nothing the detached
# steps read is rewritten under them.
run=/tmp/lowrank-run
rm -rf $run && mkdir -p $run && cp -r .device models tools bench .devdata $run/ 2>/dev/null
cd $run
OUT=$res setsid nohup bash -c 'bash tools/device/gpu_bench.sh "$@" > '$res'/background.log 2>&1; touch '$res'/finished' _ "$@" < /dev/null > /dev/null 2>&1 &
sleep 2; echo "started: $*"
