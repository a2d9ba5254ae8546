#!/usr/bin/env bash
# Network threads below inference, or not: mnist-server with --network-nice A
# against --network-nice B, in alternating rounds of one sitting
# (docs/benchmarks.md, "Network threads at a lower priority"). Each round
# starts a fresh server and measures ghz PredictOne at 1, 8 and 64 callers,
# ghz Predict with 8 streams of 100 images, then mnist-client bench's unary saturation (256 callers) and PredictOne
# offered at 10x that saturation (8,192 callers, as scripts/overload.sh).
#
#   scripts/bench-network-nice.sh [ROUNDS] [SECONDS] [A] [B]    default 3 rounds, 4 s per point, 0 against 6
#   CORES=split scripts/bench-network-nice.sh                    server on core 0, load generators on core 1
#
# CORES=shared (the default): server, ghz and mnist-client share all the
# machine's cores. CORES=split: the server (one ONNX Runtime thread) on
# core 0, ghz and mnist-client on core 1, as in bench-ghz.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
ROUNDS="${1:-3}"
SECONDS_PER_POINT="${2:-4}"
SETTINGS=("${3:-0}" "${4:-6}")
cores_layout bench-network-nice
require_ghz bench-network-nice
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server -p mnist-client
ulimit -n 65536 2>/dev/null || true
GHZ_BASE=(${LOAD[@]+"${LOAD[@]}"} "$GHZ" ${GHZ_CPUS[@]+"${GHZ_CPUS[@]}"} --insecure --proto proto/mnist/v1/classifier.proto --import-paths proto)
GHZ_CALL=("${GHZ_BASE[@]}" --call mnist.v1.Classifier.PredictOne -D examples/requests/pixels.json)
# One Predict call = one stream of 100 digits, as in bench-ghz.sh.
write_stream_requests "$OUT/stream.json" 100

echo "== cores: $CORES; machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)" >&2
for round in $(seq "$ROUNDS"); do
  for nice in "${SETTINGS[@]}"; do
    run="$OUT/$round-$nice"
    mkdir -p "$run"
    echo "== round $round, --network-nice $nice" >&2
    start_server "$run" --network-nice "$nice" ${ONNX_THREADS[@]+"${ONNX_THREADS[@]}"}
    trap stop_server EXIT
    "${GHZ_CALL[@]}" -c 8 -n 2000 "$ADDR" >/dev/null
    for c in 1 8 64; do
      "${GHZ_CALL[@]}" -c "$c" --connections $(( c < 4 ? c : 4 )) -z "${SECONDS_PER_POINT}s" --duration-stop wait \
        -O json -o "$run/ghz-$c.json" "$ADDR"
    done
    "${GHZ_BASE[@]}" --call mnist.v1.Classifier.Predict -D "$OUT/stream.json" -c 8 --connections 4 \
      -z "${SECONDS_PER_POINT}s" --duration-stop wait -O json -o "$run/ghz-stream-8.json" "$ADDR"
    bench=(${LOAD[@]+"${LOAD[@]}"} target/release/mnist-client --server "http://$ADDR" bench --format json --mode unary --duration "$SECONDS_PER_POINT")
    "${bench[@]}" --concurrency 256 --connections 8 --warmup 2000 >"$run/saturation.json"
    rate=$(python3 -c "import json; print(round(json.load(open('$run/saturation.json'))['throughput'] * 10))")
    "${bench[@]}" --concurrency 8192 --connections 8 --rate "$rate" --warmup 0 >"$run/overload.json"
    stop_server
    trap - EXIT
  done
done

python3 - "$OUT" "$ROUNDS" "${SETTINGS[@]}" <<'PY'
import json, statistics, sys, pathlib
out, rounds, settings = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
load = lambda path: json.load(open(path))

def ghz(run, c):
    r = load(run / f"ghz-{c}.json")
    pct = {int(d["percentage"]): d["latency"] / 1e6 for d in r["latencyDistribution"]}
    ok = (r.get("statusCodeDistribution") or {}).get("OK", 0)
    return ok / (r["total"] / 1e9), pct[50], pct[99]

print("| round | --network-nice | 1 caller calls/s | p50 / p99 ms | 8 callers calls/s | p99 / p50 | "
      "64 callers calls/s | 8 streams of 100: images/s | saturation images/s | at 10x: answered images/s | answered / saturation |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
summary = {s: {"lone": [], "8": [], "64": [], "stream": [], "sat": [], "over": [], "ratio": []} for s in settings}
for round in range(1, rounds + 1):
    for nice in settings:
        run = out / f"{round}-{nice}"
        (r1, p50_1, p99_1), (r8, p50_8, p99_8), (r64, _, _) = (ghz(run, c) for c in (1, 8, 64))
        stream = ghz(run, "stream-8")[0] * 100
        sat, over = load(run / "saturation.json")["throughput"], load(run / "overload.json")["throughput"]
        s = summary[nice]
        for key, value in [("lone", r1), ("8", r8), ("64", r64), ("stream", stream), ("sat", sat), ("over", over), ("ratio", over / sat)]:
            s[key].append(value)
        print(f"| {round} | {nice} | {r1:,.0f} | {p50_1:.2f} / {p99_1:.2f} | {r8:,.0f} | {p99_8 / p50_8:.2f} | "
              f"{r64:,.0f} | {stream:,.0f} | {sat:,.0f} | {over:,.0f} | {over / sat:.2f} |")
print()
a, b = settings
med = lambda nice, key: statistics.median(summary[nice][key])
print(f"| median over {rounds} rounds | --network-nice {a} | --network-nice {b} | {b} / {a} |")
print("|---|---:|---:|---:|")
for key, label in [("lone", "1 caller, calls/s"), ("8", "8 callers, calls/s"), ("64", "64 callers, calls/s"),
                   ("stream", "Predict, 8 streams of 100, images/s"),
                   ("sat", "saturation (256 callers), images/s"), ("over", "at 10x saturation: answered images/s"),
                   ("ratio", "at 10x: answered / saturation")]:
    fmt = "{:.2f}" if key == "ratio" else "{:,.0f}"
    print(f"| {label} | {fmt.format(med(a, key))} | {fmt.format(med(b, key))} | {med(b, key) / med(a, key):.2f} |")
PY
