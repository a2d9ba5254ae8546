#!/usr/bin/env bash
# Seconds per training epoch: mnist-train against the reference PyTorch
# script (../shared/peers/seed_pytorch.py), same torch build, same threads,
# interleaved in one run, REPEATS times each (docs/benchmarks.md).
#
#   scripts/bench-train.sh [REPEATS]     default 3
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/reference-env.sh" torch
REPEATS="${1:-3}"
THREADS="${THREADS:-$(nproc)}"
cargo build --release -q -p mnist-train

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); torch $(python -c 'import torch; print(torch.__version__)'); threads $THREADS" >&2
ours=(); theirs=()
for rep in $(seq "$REPEATS"); do
  target/release/mnist-train train --epochs 1 --threads "$THREADS" --no-export --quiet --out "$WORK/ours-$rep" >/dev/null 2>&1
  ours+=("$(python3 -c "import json; print(json.load(open('$WORK/ours-$rep/run.json'))['history'][0]['seconds'])")")
  line=$(cd "$WORK" && OMP_NUM_THREADS="$THREADS" MNIST_ROOT="$WORK" python "$REFERENCE" --train --epochs 1 | grep '^Epoch 1')
  theirs+=("$(echo "$line" | sed -E 's/.* ([0-9.]+)s$/\1/')")
  echo "repeat $rep: mnist-train ${ours[-1]} s, reference ${theirs[-1]} s" >&2
done
python3 - "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
ours = [float(x) for x in sys.argv[1].split()]; ref = [float(x) for x in sys.argv[2].split()]
mo, mr = statistics.median(ours), statistics.median(ref)
print("| | epoch seconds (each run) | median |")
print("|---|---|---:|")
print(f"| mnist-train | {', '.join(f'{x:.1f}' for x in ours)} | {mo:.1f} |")
print(f"| seed_pytorch.py | {', '.join(f'{x:.1f}' for x in ref)} | {mr:.1f} |")
print(f"\nratio mnist-train / reference: {mo/mr:.2f}")
PY
