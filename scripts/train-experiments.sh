#!/usr/bin/env bash
# Runs the training experiments behind docs/training.md, one after another,
# each into runs/<name>/ (metrics.jsonl, eval.json, curves.png, mnist.onnx).
#
#   scripts/train-experiments.sh [NAME...]     default: all, in the order below
#
# Each full 15-epoch CPU run takes 10-30 minutes on 2 cores depending on load:
# run it in the background. Results: scripts/train-experiments.sh --table
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/env.sh
export MNIST_DIR="${MNIST_DIR:-$ROOT/../shared/data/mnist}"
THREADS="${THREADS:-2}"
BIN="$ROOT/target/release/mnist-train"

# name | flags. Every run uses seed 0 and the reference defaults unless a flag changes them.
EXPERIMENTS=(
  "best|--augment --schedule onecycle --lr 0.003 --label-smoothing 0.05"
  "augment-onecycle|--augment --schedule onecycle --lr 0.003"
  "reference|"
  "augment|--augment"
  "onecycle|--schedule onecycle --lr 0.003"
  "smoothing|--label-smoothing 0.05"
  "cosine|--schedule cosine"
  "sgd|--optimizer sgd --lr 0.05 --momentum 0.9 --weight-decay 0.0005"
  "rmsprop|--optimizer rmsprop --lr 0.0005 --weight-decay 0"
)

table() {
  printf '| run | flags | test accuracy | final train loss | seconds/epoch (median) | total training s |\n|---|---|---|---|---|---|\n'
  for entry in "${EXPERIMENTS[@]}"; do
    name="${entry%%|*}"; flags="${entry#*|}"
    [[ -f "runs/$name/run.json" && -f "runs/$name/eval.json" ]] || continue
    python3 - "$name" "$flags" <<'PY'
import json, sys, statistics
name, flags = sys.argv[1], sys.argv[2]
run = json.load(open(f"runs/{name}/run.json")); ev = json.load(open(f"runs/{name}/eval.json"))
h = run["history"]
print(f"| {name} | `{flags or '(reference defaults)'}` | {ev['accuracy']*100:.2f}% | {h[-1]['train_loss']:.4f} | "
      f"{statistics.median(r['seconds'] for r in h):.1f} | {run['training_seconds']:.0f} |")
PY
  done
}

if [[ "${1:-}" == "--table" ]]; then table; exit 0; fi

cargo build --release -p mnist-train
wanted=("$@")
for entry in "${EXPERIMENTS[@]}"; do
  name="${entry%%|*}"; flags="${entry#*|}"
  if [[ ${#wanted[@]} -gt 0 && ! " ${wanted[*]} " =~ " $name " ]]; then continue; fi
  echo "=== $name: $flags"
  # shellcheck disable=SC2086
  "$BIN" train --out "runs/$name" --threads "$THREADS" --seed 0 $flags
done
table
