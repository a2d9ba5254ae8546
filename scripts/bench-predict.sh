#!/usr/bin/env bash
# `mnist-client predict` on a folder of 10,000 MNIST PNG files against the
# reference script's `--predict DIR`, end to end, in one run
# (docs/benchmarks.md). The reference first trains its model for one epoch
# (it has none otherwise); the server serves the shipped model.
#
#   scripts/bench-predict.sh [COUNT]     default 10000
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/reference-env.sh" runtime
COUNT="${1:-10000}"
cargo build --release -q -p mnist-server -p mnist-client
cargo run --release -q --example write_pngs -- "$WORK/pngs" "$COUNT" >&2
(cd "$WORK" && MNIST_ROOT="$WORK" python "$REFERENCE" --train --epochs 1 >/dev/null)

target/release/mnist-server --addr 127.0.0.1:0 --log-format json 2>"$WORK/server.log" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '"message":"ready' "$WORK/server.log" && break; sleep 0.1; done
ADDR=$(python3 -c "import json
for l in open('$WORK/server.log'):
    f=json.loads(l).get('fields',{})
    if f.get('message')=='listening': print(f['addr'])")

t0=$(date +%s.%N)
target/release/mnist-client --server "http://$ADDR" predict "$WORK/pngs" --format csv --quiet > "$WORK/ours.csv"
t1=$(date +%s.%N)
(cd "$WORK" && MNIST_ROOT="$WORK" python "$REFERENCE" --predict "$WORK/pngs" > "$WORK/reference.txt")
t2=$(date +%s.%N)

python3 - "$WORK" "$t0" "$t1" "$t2" <<'PY'
import csv, re, sys
work, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
label = lambda p: int(re.search(r"label-(\d)", p).group(1))
ours = {row["path"].rsplit("/", 1)[-1]: int(row["digit"]) for row in csv.DictReader(open(f"{work}/ours.csv"))}
ref = {}
for line in open(f"{work}/reference.txt"):
    m = re.match(r"file: (.*), predict: (\d)", line.strip())
    if m: ref[m.group(1).rsplit("/", 1)[-1]] = int(m.group(2))
names = sorted(ours)
acc = lambda preds: sum(preds[n] == label(n) for n in names) / len(names)
agree = sum(ours[n] == ref.get(n) for n in names) / len(names)
print("| | seconds (end to end) | files/s | accuracy on these files |")
print("|---|---:|---:|---:|")
print(f"| mnist-client predict | {t1-t0:.2f} | {len(names)/(t1-t0):.0f} | {100*acc(ours):.2f}% |")
print(f"| seed_pytorch.py --predict | {t2-t1:.2f} | {len(names)/(t2-t1):.0f} | {100*acc(ref):.2f}% |")
print(f"\nspeed-up: {(t2-t1)/(t1-t0):.1f}x; same prediction on {100*agree:.2f}% of {len(names)} files")
PY
