#!/usr/bin/env bash
# The HTTP port under a flood of bodies that never finish, and the memory
# one refused body costs. In one run against one release server:
#   1. on the idle server, one refused 4 MiB JSON body (6,000 images'
#      worth of shape, the data not matching it), the first it sees: the
#      rise of the server's RSS over its level before (sampled every 5 ms),
#      against the body's size;
#   2. ghz PredictOne (pixels, gRPC) for SECONDS alone: the baseline rate;
#   3. the same while 200 HTTP connections each announce 4 MiB, send one
#      byte short and stall, and 2 clients loop such refused JSON bodies:
#      the ratio, and the server's peak RSS.
# Figures go in docs/benchmarks.md ("Careless HTTP clients").
#
#   scripts/bench-body-flood.sh [SECONDS]     default 10
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
require_ghz bench-body-flood.sh
SECONDS_PER_POINT="${1:-10}"
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server --bin mnist-server

describe_machine
start_server "$OUT" --http-addr 127.0.0.1:0
HTTP_ADDR=$(python3 -c "import json
for l in open('$OUT/server.log'):
    f=json.loads(l).get('fields',{})
    if f.get('message')=='HTTP listening': print(f['addr'])")
trap 'stop_server; kill $(jobs -p) 2>/dev/null || true' EXIT

ghz_rate() {
  "$GHZ" --insecure --proto proto/mnist/v1/classifier.proto --import-paths proto \
    --call mnist.v1.Classifier.PredictOne -D examples/requests/pixels.json \
    -c 16 -z "${SECONDS_PER_POINT}s" --duration-stop wait -O json "$ADDR" >"$OUT/$1.json"
  python3 -c "import json; r=json.load(open('$OUT/$1.json')); print(round(r['rps'], 1), r.get('statusCodeDistribution'))"
}
# Warm up.
"$GHZ" --insecure --proto proto/mnist/v1/classifier.proto --import-paths proto \
  --call mnist.v1.Classifier.PredictOne -D examples/requests/pixels.json -n 2000 "$ADDR" >/dev/null

echo "== one refused 4 MiB JSON body on the idle server" >&2
python3 scripts/body_flood.py one "$HTTP_ADDR" "$SERVER_PID" >"$OUT/one.txt"
cat "$OUT/one.txt" >&2

echo "== PredictOne alone, ${SECONDS_PER_POINT}s" >&2
alone=$(ghz_rate alone)
echo "   $alone calls/s" >&2

python3 scripts/body_flood.py flood "$HTTP_ADDR" "$SERVER_PID" $((SECONDS_PER_POINT + 10)) >"$OUT/flood.txt" &
FLOOD=$!
sleep 5
echo "== PredictOne beside the flood, ${SECONDS_PER_POINT}s" >&2
flooded=$(ghz_rate flooded)
echo "   $flooded calls/s" >&2
wait "$FLOOD"
cat "$OUT/flood.txt" >&2

python3 - "$alone" "$flooded" <<'PY'
import sys
alone, flooded = float(sys.argv[1].split()[0]), float(sys.argv[2].split()[0])
print(f"PredictOne alone {alone:.0f}/s, beside the body flood {flooded:.0f}/s: ratio {flooded / alone:.2f}")
PY
