#!/usr/bin/env bash
# The test command (README, .ci/run): set up, build, and run every test project; ends with "N passed, N failed".
# Test assemblies run one after another (-m:1): several start real compressions, and on a 2-core machine two
# assemblies at once only make each slower and their timings noisier.
set -uo pipefail
# The cancellation tests send SIGINT to the tool and to `dotnet build`. A shell started as a background job inherits
# SIGINT ignored, every child inherits that, and .NET keeps an inherited-ignored SIGINT ignored, so Ctrl+C could
# never be observed. Re-run this script once with SIGINT back at its default (bash itself cannot undo it).
if [ -z "${LRK_TEST_SIGINT_DEFAULT:-}" ] && command -v python3 >/dev/null 2>&1; then
  export LRK_TEST_SIGINT_DEFAULT=1  # not LOWRANK_*: the tool reads those as configuration
  exec python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp("bash", ["bash"] + sys.argv[1:])' "$0" "$@"
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash eng/setup.sh || exit 1
log=$(mktemp)
dotnet test LowRank.Build.sln -c Release --nologo -m:1 --logger "console;verbosity=normal" 2>&1 | tee "$log" | grep -E "^\s*(Passed|Failed|Skipped) |error|Passed!|Failed!|Total tests|Skipped [A-Za-z]" 
status=${PIPESTATUS[0]}
passed=$(grep -oE "Passed: +[0-9]+" "$log" | awk '{s+=$2} END{print s+0}')
failed=$(grep -oE "Failed: +[0-9]+" "$log" | awk '{s+=$2} END{print s+0}')
skipped=$(grep -oE "Skipped: +[0-9]+" "$log" | awk '{s+=$2} END{print s+0}')
if [ "$failed" -ne 0 ]; then
  echo "---- failure details ----"
  grep -E -A 25 "^\s+Failed [A-Za-z]" "$log" | head -400
fi
rm -f "$log"
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
