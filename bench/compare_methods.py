"""Markdown PPL tables from `dotnet lowrank bench methods --json` results: one table per file, or, given a CPU and a
CUDA result of the same model and settings, one table with both and their relative difference.
Usage: python3 bench/compare_methods.py CPU.json [CUDA.json]"""
import json, sys

def load(path):
    with open(path) as f:
        return json.load(f)

def cell(ppl):
    return f"{ppl:.4f}" if ppl < 100 else f"{ppl:.2f}" if ppl < 1e4 else f"{ppl:.3e}"

a = load(sys.argv[1])
b = load(sys.argv[2]) if len(sys.argv) > 2 else None
ratios = sorted({r["requestedRatio"] for r in a["rows"]})
methods = list(dict.fromkeys(r["method"] for r in a["rows"]))
rows = {(r["method"], r["requestedRatio"]): r for r in a["rows"]}
other = {(r["method"], r["requestedRatio"]): r for r in b["rows"]} if b else {}
head = " | ".join(f"CR {x:g}" for x in ratios)
print(f"| method | {head} |")
print("|---|" + "---:|" * len(ratios))
orig = cell(a["originalPerplexity"]) + (f" / {cell(b['originalPerplexity'])}" if b else "")
print(f"| original | " + " | ".join(orig for _ in ratios) + " |")
worst = 0.0
for m in methods:
    cells = []
    for x in ratios:
        r = rows.get((m, x))
        if r is None:
            cells.append("–"); continue
        text = cell(r["perplexity"])
        if b and (m, x) in other:
            o = other[(m, x)]["perplexity"]
            rel = abs(o - r["perplexity"]) / r["perplexity"]
            worst = max(worst, rel)
            text += f" / {cell(o)} ({rel:.0e})"
        cells.append(text)
    print(f"| {m} | " + " | ".join(cells) + " |")
if b:
    print(f"\nlargest relative CPU/CUDA PPL difference: {worst:.2e}")
