#!/usr/bin/env bash
# Soak with careless clients: MINUTES of mixed traffic against one release
# server with every shipped model and the HTTP port: PredictOne, polite Read
# streams, a client that never reads its streams' answers, web uploads, OIP
# over HTTP, bodies announced over the limit and bodies trickled a byte a
# second (server/examples/careless_soak.rs says what each does). A lone
# PNG PredictOne every 100 ms on its own connection is the measure: its
# p50/p99/slowest per minute, and the server's RSS per minute. Results go in
# docs/reliability.md ("Careless clients").
#
#   scripts/soak-careless.sh [MINUTES]     default 30
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
MINUTES="${1:-30}"
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server --bin mnist-server --example careless_soak

describe_machine
start_server "$OUT" --model-repository models --default-model mnist --http-addr 127.0.0.1:0
HTTP_ADDR=$(python3 -c "import json
for l in open('$OUT/server.log'):
    f=json.loads(l).get('fields',{})
    if f.get('message')=='HTTP listening': print(f['addr'])")
trap 'stop_server' EXIT
echo "== $MINUTES min of careless and polite traffic; gRPC $ADDR, HTTP $HTTP_ADDR; per minute:" >&2
target/release/examples/careless_soak --grpc "$ADDR" --http "$HTTP_ADDR" --pid "$SERVER_PID" --minutes "$MINUTES" \
  | tee "$OUT/minutes.jsonl"

python3 - "$OUT/minutes.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n| minute | lone calls | refused | p50 ms | p99 ms | slowest ms | other failures | RSS MiB (min-max) | readings |")
print("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for r in rows:
    print(f"| {r['minute']} | {r['lone_calls']} | {r['lone_refusals']} | {r['lone_p50_ms']:.1f} | {r['lone_p99_ms']:.1f} "
          f"| {r['lone_max_ms']:.1f} | {r['lone_failures']} | {r['rss_mib_min']}-{r['rss_mib_max']} | {r['readings']} |")
last = rows[-1]
print(f"\nPredictOne pixels answered: {last['unary_ok_total']}; HTTP 200: {last['http_ok_total']}, "
      f"413: {last['http_413_total']}, 408: {last['http_408_total']}, 429: {last['http_429_total']}, "
      f"other: {last['http_other_total']}")
worst = max(r['lone_max_ms'] for r in rows)
print(f"slowest lone call of the run: {worst:.1f} ms; refused {sum(r['lone_refusals'] for r in rows)} of "
      f"{sum(r['lone_calls'] for r in rows)}; other failures: {sum(r['lone_failures'] for r in rows)}")
PY
