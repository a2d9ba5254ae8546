#!/usr/bin/env bash
# Model reloads under load (docs/operations.md): one release server, unary
# load from mnist-client bench (8 callers) for DURATION seconds twice, once
# without reloads (baseline) and once with RELOADS SIGHUPs spread over it,
# alternating two model files (the shipped one and a byte-different copy,
# each with its card); then the RSS before and after the reloads.
#
#   scripts/reload-soak.sh [RELOADS] [DURATION]      default 20 and 30
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
RELOADS="${1:-20}"
DURATION="${2:-30}"
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server -p mnist-client

# Two models: the shipped one, and the same with a doc_string appended
# (protobuf keeps the last value of a field), each with its card.
python3 - "$OUT" <<'PY'
import hashlib, json, sys
out = sys.argv[1]
a = open("models/mnist.onnx", "rb").read()
doc = b"variant B, for the reload soak"
b = a + bytes([0x32, len(doc)]) + doc
card = json.load(open("models/mnist.json"))
for name, data in [("a", a), ("b", b)]:
    open(f"{out}/{name}.onnx", "wb").write(data)
    json.dump(dict(card, sha256=hashlib.sha256(data).hexdigest()), open(f"{out}/{name}.json", "w"))
PY
mkdir -p "$OUT/served"
install_model() {  # a|b: card and model renamed over the served pair
  cp "$OUT/$1.json" "$OUT/served/.mnist.json.new" && mv "$OUT/served/.mnist.json.new" "$OUT/served/mnist.json"
  cp "$OUT/$1.onnx" "$OUT/served/.mnist.onnx.new" && mv "$OUT/served/.mnist.onnx.new" "$OUT/served/mnist.onnx"
}
install_model a
METRICS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_server "$OUT" --model "$OUT/served/mnist.onnx" --metrics-addr "127.0.0.1:$METRICS_PORT"
trap stop_server EXIT
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
bench() {
  target/release/mnist-client --server "http://$ADDR" bench --mode unary --concurrency 8 --connections 4 \
    --duration "$DURATION" --warmup 500 --format json >"$OUT/$1.json"
}
describe_machine
echo "== baseline: $DURATION s without reloads" >&2
bench baseline
rss_before=$(rss)
echo "== $RELOADS reloads during $DURATION s" >&2
bench reloads &
BENCH=$!
sleep 2
gap=$(python3 -c "print(max(0.2, ($DURATION - 4) / $RELOADS))")
for i in $(seq "$RELOADS"); do
  if (( i % 2 )); then install_model b; else install_model a; fi
  kill -HUP "$SERVER_PID"
  sleep "$gap"
done
wait "$BENCH"
sleep 1
rss_after=$(rss)
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | grep '^mnist_model_reloads_total' >"$OUT/reloads.txt" || true
grep -c '"model reloaded' "$OUT/server.log" >"$OUT/reloaded.txt" || true
python3 - "$OUT" "$rss_before" "$rss_after" "$RELOADS" <<'PY'
import json, sys, pathlib
out, before, after, reloads = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = {name: json.load(open(out / f"{name}.json")) for name in ["baseline", "reloads"]}
print("| run | images/s | p50 ms | p99 ms | max ms | errors |")
print("|---|---:|---:|---:|---:|---:|")
for name, r in rows.items():
    lat = r["latency_ms"]
    errors = sum(r.get("errors", {}).values())
    print(f"| {name} | {r['throughput']:,.0f} | {lat['p50']:.2f} | {lat['p99']:.2f} | {lat.get('max', float('nan')):.2f} | {errors} |")
b, w = rows["baseline"]["latency_ms"], rows["reloads"]["latency_ms"]
print(f"\np99 with reloads / without: {w['p99'] / b['p99']:.2f}; throughput ratio "
      f"{rows['reloads']['throughput'] / rows['baseline']['throughput']:.2f}")
print(f"RSS before the reloads {before / 1024:.1f} MiB, after {reloads} reloads {after / 1024:.1f} MiB")
print("reload counters: " + " ".join(open(out / "reloads.txt").read().split()))
PY
