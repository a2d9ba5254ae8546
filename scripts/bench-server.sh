#!/usr/bin/env bash
# Server throughput and latency against the in-process ONNX Runtime ceiling,
# side by side in one run (docs/benchmarks.md).
#
#   scripts/bench-server.sh [SECONDS_PER_POINT]     default 10
#
# Server and load generator share this machine, as they would in a
# single-host deployment; numbers are only comparable within one run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
SECONDS_PER_POINT="${1:-10}"
THREADS="${THREADS:-0}"
# Same ONNX Runtime settings for the ceiling and the server: SPIN=1 lets idle
# intra-op threads spin (the server's --intra-op-spinning).
SPIN_FLAG=(); [[ "${SPIN:-0}" == 1 ]] && SPIN_FLAG=(--intra-op-spinning)
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server -p mnist-client --example ceiling

describe_machine
echo "== ceiling (ONNX Runtime in-process, intra-threads $THREADS, spinning ${SPIN:-0})" >&2
target/release/examples/ceiling --intra-threads "$THREADS" "${SPIN_FLAG[@]}" --seconds 3 1 8 16 32 64 128 256 | tee "$OUT/ceiling.md"

bench() {  # name, then mnist-client bench flags
  local name="$1"; shift
  echo "== $name" >&2
  target/release/mnist-client --server "http://$ADDR" bench --duration "$SECONDS_PER_POINT" --warmup 500 --format json "$@" \
    > "$OUT/$name.json"
}

for batching in on off; do
  if [[ $batching == on ]]; then batch=64; else batch=1; fi
  start_server "$OUT" --intra-threads "$THREADS" "${SPIN_FLAG[@]}" --max-batch-size "$batch"
  for c in 1 8 64; do bench "stream-$c-$batching" --mode stream --concurrency "$c" --window 1; done
  bench "saturation-$batching" --mode stream --concurrency 64 --window 8
  [[ $batching == on ]] && bench "unary-1-on" --mode unary --concurrency 1
  stop_server
done

python3 - "$OUT" <<'PY'
import json, sys, re, pathlib
out = pathlib.Path(sys.argv[1])
r = lambda n: json.load(open(out / f"{n}.json"))
ceiling_text = open(out / "ceiling.md").read()
ceiling = float(re.search(r"^ceiling of [^:]+: (\d+)", ceiling_text, re.M).group(1))
batch1_ms = float(re.search(r"^\| [^|]+ \| 1 \| \d+ \| ([\d.]+) \|", ceiling_text, re.M).group(1))
print("\n| load | batching | images/s | p50 ms | p99 ms | errors | % of ceiling |")
print("|---|---|---:|---:|---:|---:|---:|")
for name, label in [("stream-1", "1 stream"), ("stream-8", "8 streams"), ("stream-64", "64 streams"),
                    ("saturation", "64 streams x 8 in flight")]:
    for b in ["on", "off"]:
        x = r(f"{name}-{b}")
        errors = sum(x["errors"].values())
        print(f"| {label} | {b} | {x['throughput']:.0f} | {x['latency_ms']['p50']:.3f} | {x['latency_ms']['p99']:.3f} | {errors} | {100*x['throughput']/ceiling:.0f}% |")
u = r("unary-1-on")
print(f"| 1 unary caller | on | {u['throughput']:.0f} | {u['latency_ms']['p50']:.3f} | {u['latency_ms']['p99']:.3f} | {sum(u['errors'].values())} | |")
on, off = r("stream-64-on")["throughput"], r("stream-64-off")["throughput"]
sat = max(r("saturation-on")["throughput"], r("stream-64-on")["throughput"])
print(f"\nceiling {ceiling:.0f} images/s; in-process batch-1 time {batch1_ms:.3f} ms")
print(f"saturation / ceiling: {sat/ceiling:.2f}")
print(f"64 streams, batching on / off: {on/off:.2f}x")
print(f"lone unary p50 - in-process batch-1: {u['latency_ms']['p50'] - batch1_ms:.3f} ms")
PY
