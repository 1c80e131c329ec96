#!/usr/bin/env bash
# The test command (README, .ci/run): set up, build, and run every test project; ends with "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash eng/setup.sh || exit 1
log=$(mktemp)
dotnet test LowRank.Build.sln -c Release --nologo --logger "console;verbosity=normal" 2>&1 | tee "$log" | grep -E "^\s*(Passed|Failed|Skipped) |error|Passed!|Failed!|Total tests|Skipped [A-Za-z]" 
status=${PIPESTATUS[0]}
passed=$(grep -oE "Passed: +[0-9]+" "$log" | awk '{s+=$2} END{print s+0}')
failed=$(grep -oE "Failed: +[0-9]+" "$log" | awk '{s+=$2} END{print s+0}')
skipped=$(grep -oE "Skipped: +[0-9]+" "$log" | awk '{s+=$2} END{print s+0}')
rm -f "$log"
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
