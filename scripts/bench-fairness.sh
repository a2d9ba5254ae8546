#!/usr/bin/env bash
# One model's flood must not starve another model's lone caller
# (docs/benchmarks.md, "Several models: fairness"). One server serves two
# models, A and B; ghz measures a lone PredictOne caller on A:
#   1. alone (A's unloaded tail);
#   2. while 64 ghz callers flood B (the target: p99 within 3x of 1);
#   3. baseline, same run: while the 64 callers flood A itself, the lone
#      caller sharing their queue and batches, as it would if both models
#      shared one queue.
# Rounds alternate the three points, so drift on a noisy machine spreads
# over all of them; the table gives the median of each figure.
#
#   scripts/bench-fairness.sh [ROUNDS] [SECONDS_PER_POINT]   default 3 rounds of 5 s
#   A=models/mnist.onnx B=models/mnist-int8.onnx scripts/bench-fairness.sh
#   GHZ=/path/to/ghz scripts/bench-fairness.sh               default ../shared/tools/ghz
#   CORES=split scripts/bench-fairness.sh                    server on core 0, ghz on core 1
#   SERVER_FLAGS="--intra-threads 1" scripts/bench-fairness.sh  extra mnist-server flags
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
ROUNDS="${1:-3}"
SECONDS_PER_POINT="${2:-5}"
A="${A:-models/mnist.onnx}"
B="${B:-models/mnist-int8.onnx}"
read -r -a EXTRA_SERVER_FLAGS <<<"${SERVER_FLAGS:-}"
cores_layout bench-fairness
require_ghz bench-fairness
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server
ulimit -n 65536 2>/dev/null || true

# PredictOne bodies naming each model.
for name in a b; do
  python3 - "$OUT/$name.json" "$name" <<'PY'
import json, sys
body = json.load(open("examples/requests/pixels.json"))
body["model"] = sys.argv[2]
json.dump(body, open(sys.argv[1], "w"))
PY
done

GHZ_BASE=(${LOAD[@]+"${LOAD[@]}"} "$GHZ" ${GHZ_CPUS[@]+"${GHZ_CPUS[@]}"} --insecure
  --proto proto/mnist/v1/classifier.proto --import-paths proto --call mnist.v1.Classifier.PredictOne)
lone() {  # output name, then extra ghz flags
  local name="$1"; shift
  "${GHZ_BASE[@]}" -c 1 --connections 1 -z "${SECONDS_PER_POINT}s" --duration-stop wait -D "$OUT/a.json" \
    -O json -o "$OUT/$name.json" "$@" "$ADDR"
}
# flood MODEL NAME: 64 callers on 4 connections for a bit longer than the lone caller runs.
flood() {
  "${GHZ_BASE[@]}" -c 64 --connections 4 -z "$((SECONDS_PER_POINT + 2))s" --duration-stop wait \
    -D "$OUT/$1.json" -O json -o "$OUT/$2.json" "$ADDR" &
  FLOOD_PID=$!
  sleep 1  # let the flood reach its steady state first
}

describe_machine
echo "== cores: $CORES; A=$A B=$B; server flags: ${SERVER_FLAGS:-none}; $ROUNDS rounds of ${SECONDS_PER_POINT} s" >&2
start_server "$OUT" --model "a=$A" --model "b=$B" ${ONNX_THREADS[@]+"${ONNX_THREADS[@]}"} \
  ${EXTRA_SERVER_FLAGS[@]+"${EXTRA_SERVER_FLAGS[@]}"}
trap stop_server EXIT
"${GHZ_BASE[@]}" -c 8 -n 2000 -D "$OUT/a.json" "$ADDR" >/dev/null
"${GHZ_BASE[@]}" -c 8 -n 2000 -D "$OUT/b.json" "$ADDR" >/dev/null
for round in $(seq "$ROUNDS"); do
  echo "== round $round: A alone" >&2
  lone "alone-$round"
  echo "== round $round: A while B is flooded" >&2
  flood b "flood-b-$round"; lone "beside-b-$round"; wait "$FLOOD_PID"
  echo "== round $round: A while A itself is flooded (one queue)" >&2
  flood a "flood-a-$round"; lone "inside-a-$round"; wait "$FLOOD_PID"
done
stop_server
trap - EXIT

python3 - "$OUT" "$ROUNDS" <<'PY'
import statistics, sys, pathlib
sys.path.insert(0, "scripts")
import ghz_report
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])

def figures(name):
    return ghz_report.point(out, name)

def median(point, key):
    return statistics.median(figures(f"{point}-{r}")[key] for r in range(1, rounds + 1))

rows = [("A alone", "alone", None), ("A while 64 callers flood B", "beside-b", "flood-b"),
        ("A while 64 callers flood A (one queue)", "inside-a", "flood-a")]
alone_p99 = median("alone", "p99")
print("| lone caller on A | p50 ms | p99 ms | p99 / alone | flood calls/s | errors |")
print("|---|---:|---:|---:|---:|---:|")
for label, point, flood in rows:
    p50, p99 = median(point, "p50"), median(point, "p99")
    flood_rps = f"{median(flood, 'rps'):,.0f}" if flood else "-"
    errors = sum(figures(f"{point}-{r}")["errors"] for r in range(1, rounds + 1))
    print(f"| {label} | {p50:.3f} | {p99:.3f} | {p99 / alone_p99:.2f} | {flood_rps} | {errors} |")
print()
print("per round, p99 ms (alone / beside B's flood / inside A's flood): " + "; ".join(
    f"{figures(f'alone-{r}')['p99']:.3f} / {figures(f'beside-b-{r}')['p99']:.3f} / {figures(f'inside-a-{r}')['p99']:.3f}"
    for r in range(1, rounds + 1)))
PY
