#!/usr/bin/env bash
# The README's ghz commands against two server binaries, alternated in one
# run (docs/benchmarks.md, "The README's ghz commands, before and after"),
# plus PredictOne on a phone photo (examples/digits/photo-label-4.jpg: the
# path that decodes, finds the ink's polarity and preprocesses a photo).
#
#   scripts/bench-readme-ghz.sh BEFORE_BIN AFTER_BIN [ROUNDS]   default 2 rounds
#
# Each binary serves the model repository (models/, default mnist) on
# 127.0.0.1:50051, as scripts/serve.sh does. Prints one markdown table of
# calls a second; every call must answer OK.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BEFORE="$1" AFTER="$2" ROUNDS="${3:-2}"
GHZ="${GHZ:-$ROOT/../shared/tools/ghz}"
source scripts/env.sh
WORK="$(mktemp -d)"
python3 - "$WORK/photo.json" <<'PY'
import base64, json, sys
data = base64.b64encode(open("examples/digits/photo-label-4.jpg", "rb").read()).decode()
json.dump({"id": "photo-4", "image": data}, open(sys.argv[1], "w"))
PY
COMMANDS=(
  "PredictOne pixels (-c 50 -n 20000)|--call mnist.v1.Classifier.PredictOne -D examples/requests/pixels.json -c 50 -n 20000"
  "PredictOne 28x28 PNG (-c 50 -n 10000)|--proto proto/mnist/v1/classifier.proto --import-paths proto --call mnist.v1.Classifier.PredictOne -D examples/requests/png.json -c 50 -n 10000"
  "PredictOne phone photo (-c 8 -n 2000)|--call mnist.v1.Classifier.PredictOne -D $WORK/photo.json -c 8 -n 2000"
  "Predict stream of 10 (-c 16 -n 2000)|--call mnist.v1.Classifier.Predict -D examples/requests/stream-ghz.json -c 16 -n 2000"
  "ReadOne (-c 8 -n 300)|--call mnist.v1.Classifier.ReadOne -D examples/requests/read.json -c 8 -n 300"
  "ModelInfer (-c 50 -n 20000)|--call inference.GRPCInferenceService.ModelInfer -D examples/requests/oip-infer.json -c 50 -n 20000"
)
run() { # BIN LABEL
  "$1" --model-repository models --default-model mnist --addr 127.0.0.1:50051 >"$WORK/server.log" 2>&1 &
  local server=$!
  for _ in $(seq 100); do grep -q "ready: serving" "$WORK/server.log" 2>/dev/null && break; sleep 0.2; done
  for entry in "${COMMANDS[@]}"; do
    local name="${entry%%|*}" args="${entry#*|}"
    # shellcheck disable=SC2086
    "$GHZ" --insecure $args -O json 127.0.0.1:50051 >"$WORK/out.json"
    python3 - "$WORK/out.json" "$name" "$2" >>"$WORK/rows" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
codes = r.get("statusCodeDistribution") or {}
bad = {k: v for k, v in codes.items() if k != "OK"}
if bad:
    sys.exit(f"{sys.argv[2]}: not every call answered OK: {codes}")
print(f"{sys.argv[2]}|{sys.argv[3]}|{r['rps']:.1f}")
PY
  done
  kill "$server"; wait "$server" 2>/dev/null || true
}
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)" >&2
for round in $(seq "$ROUNDS"); do
  run "$BEFORE" "before, round $round"
  run "$AFTER" "after, round $round"
done
python3 - "$WORK/rows" <<'PY'
import sys
rows = [line.strip().split("|") for line in open(sys.argv[1]) if line.strip()]
columns = list(dict.fromkeys(r[1] for r in rows))
names = list(dict.fromkeys(r[0] for r in rows))
value = {(r[0], r[1]): float(r[2]) for r in rows}
print("| command | " + " | ".join(columns) + " |")
print("|---|" + "---:|" * len(columns))
for name in names:
    print(f"| {name} | " + " | ".join(f"{value[(name, c)]:,.1f}" for c in columns) + " |")
PY
