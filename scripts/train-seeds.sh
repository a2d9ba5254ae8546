#!/usr/bin/env bash
# The seed spread behind docs/training.md ("Chosen on validation"): the
# shipped recipe, the reference recipe and the three-block network (batch
# normalization, a third convolution block) with the shipped recipe's
# training, seeds 0, 1 and 2, each holding out the last 5,000 training images
# for validation and exporting the calibrated float model and the int8 model
# into $RUNS/<recipe>-s<seed>/ (RUNS default: runs).
#
#   scripts/train-seeds.sh                   train every recipe's runs, two at a time (1 thread each)
#   scripts/train-seeds.sh three-block       only these recipes
#   SEEDS="0 1" scripts/train-seeds.sh       only these seeds
#   scripts/train-seeds.sh --table           the table: validation and test accuracy per run,
#                                            mean and range per recipe, calibration, int8
#
# A 15-epoch run takes 15-25 minutes per pair on 2 cores: run it in the
# background. Recipes are compared by validation accuracy only; the test
# column is read once, for the recipe chosen.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/env.sh
export MNIST_DIR="${MNIST_DIR:-$ROOT/../shared/data/mnist}"
BIN="$ROOT/target/release/mnist-train"
RUNS="${RUNS:-runs}"
read -r -a SEEDS <<<"${SEEDS:-0 1 2}"
declare -A RECIPES=(
  [shipped]="--augment --schedule onecycle --lr 0.003 --label-smoothing 0.05"
  [reference]=""
  [three-block]="--arch three-block --augment --schedule onecycle --lr 0.003 --label-smoothing 0.05"
)
ORDER=(shipped reference three-block)

table() {
  RUNS="$RUNS" python3 - "${SEEDS[@]}" <<'PY'
import json, os, statistics, sys
seeds = sys.argv[1:]
runs = os.environ["RUNS"]
print("| recipe | seed | validation accuracy | test accuracy | int8 test accuracy | int8 = float digit | T | test ECE before -> after |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
summary = {}
for recipe in ["shipped", "reference", "three-block"]:
    for seed in seeds:
        d = f"{runs}/{recipe}-s{seed}"
        if not os.path.exists(f"{d}/mnist.json"):
            continue
        f = json.load(open(f"{d}/mnist.json"))
        q = json.load(open(f"{d}/mnist-int8.json")) if os.path.exists(f"{d}/mnist-int8.json") else None
        c = f.get("calibration") or {}
        summary.setdefault(recipe, []).append((f["validation_accuracy"], f["test_accuracy"], q and q["test_accuracy"]))
        print(f"| {recipe} | {seed} | {f['validation_accuracy']*100:.2f}% | {f['test_accuracy']*100:.2f}% | "
              f"{q['test_accuracy']*100:.2f}% | {q['quantization']['test_argmax_agreement']*100:.2f}% | "
              f"{c.get('temperature', 1):.3f} | {c['test']['before']['ece']*100:.2f}% -> {c['test']['after']['ece']*100:.2f}% |"
              if q and c else f"| {recipe} | {seed} | {f['validation_accuracy']*100:.2f}% | {f['test_accuracy']*100:.2f}% | | | | |")
print("\n| recipe | runs | validation accuracy, mean (min-max) | test accuracy, mean (min-max) | int8 test accuracy, mean |")
print("|---|---:|---:|---:|---:|")
for recipe, rows in summary.items():
    val, test, q = zip(*rows)
    pct = lambda xs: f"{statistics.mean(xs)*100:.2f}% ({min(xs)*100:.2f}-{max(xs)*100:.2f})"
    qs = [x for x in q if x is not None]
    print(f"| {recipe} | {len(rows)} | {pct(val)} | {pct(test)} | {statistics.mean(qs)*100:.2f}% |" if qs else
          f"| {recipe} | {len(rows)} | {pct(val)} | {pct(test)} | |")
if len(summary) >= 2:
    best = max(summary, key=lambda r: statistics.mean(v for v, _, _ in summary[r]))
    print(f"\nchosen by mean validation accuracy: **{best}**")
PY
}

if [[ "${1:-}" == "--table" ]]; then table; exit 0; fi

cargo build --release -q -p mnist-train
run() {  # recipe seed
  local recipe="$1" seed="$2"
  # shellcheck disable=SC2086 # the recipe's flags are words
  "$BIN" train --threads 1 --quiet --seed "$seed" --int8 ${RECIPES[$recipe]} --out "$RUNS/$recipe-s$seed" \
    >"$RUNS/$recipe-s$seed.log" 2>&1
  echo "done: $recipe seed $seed" >&2
}
mkdir -p "$RUNS"
(( $# > 0 )) && ORDER=("$@")
for recipe in "${ORDER[@]}"; do
  [[ -n "${RECIPES[$recipe]+set}" ]] || { echo "train-seeds: no recipe '$recipe' (${!RECIPES[*]})" >&2; exit 2; }
done
jobs_list=()
for recipe in "${ORDER[@]}"; do for seed in "${SEEDS[@]}"; do jobs_list+=("$recipe $seed"); done; done
for job in "${jobs_list[@]}"; do
  # Two runs at a time, one libtorch thread each: the 2 cores stay busy
  # without the runs fighting over them.
  while (( $(jobs -rp | wc -l) >= 2 )); do wait -n; done
  # shellcheck disable=SC2086
  run $job &
done
wait
table
