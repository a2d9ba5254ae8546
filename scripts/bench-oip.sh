#!/usr/bin/env bash
# The Open Inference Protocol's ModelInfer against mnist.v1's PredictOne,
# one image per call, under ghz, side by side in one run (docs/benchmarks.md,
# "Open Inference Protocol"): one release server, the variants interleaved
# round by round so that drift on a shared machine hits them alike.
#   - PredictOne: examples/requests/pixels.json (784 bytes);
#   - ModelInfer typed: examples/requests/oip-infer.json (uint_contents), all outputs;
#   - ModelInfer raw: the same pixels in raw_input_contents (what tritonclient sends), all outputs.
# Beside ghz's numbers, the CPU time the server and ghz each spent per call
# (from /proc): ghz shares the two cores, so a request that is costlier for
# ghz to encode lowers the server's throughput without costing the server more.
#
#   scripts/bench-oip.sh [SECONDS_PER_POINT] [ROUNDS]   default 5 and 3
#   GHZ=/path/to/ghz scripts/bench-oip.sh                default ../shared/tools/ghz
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
SECONDS_PER_POINT="${1:-5}"
ROUNDS="${2:-3}"
require_ghz bench-oip
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server
CALLERS=(1 8 64)

# The raw variant: the pixels of pixels.json (base64 already) as raw_input_contents.
python3 - "$OUT" <<'PY'
import json, sys
pixels = json.load(open("examples/requests/pixels.json"))["pixels"]
request = {"model_name": "mnist", "id": "digit-7",
           "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 784]}], "raw_input_contents": [pixels]}
json.dump(request, open(f"{sys.argv[1]}/oip-raw.json", "w"))
PY

# with_cpu_time FILE COMMAND...: runs COMMAND, writing its user and system CPU seconds to FILE.
with_cpu_time() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{usage.ru_utime} {usage.ru_stime}\n")
sys.exit(code)
PY
}

# cpu_seconds PID: user + system time of a process so far.
cpu_seconds() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }

start_server "$OUT"
trap stop_server EXIT
proto_of() { case "$1" in predict-one) echo proto/mnist/v1/classifier.proto ;; *) echo proto/inference/grpc_service.proto ;; esac; }
call_of() { case "$1" in predict-one) echo mnist.v1.Classifier.PredictOne ;; *) echo inference.GRPCInferenceService.ModelInfer ;; esac; }
data_of() {
  case "$1" in
    predict-one) echo examples/requests/pixels.json ;;
    model-infer-typed) echo examples/requests/oip-infer.json ;;
    model-infer-raw) echo "$OUT/oip-raw.json" ;;
  esac
}
VARIANTS=(predict-one model-infer-typed model-infer-raw)
for v in "${VARIANTS[@]}"; do  # warm-up: connections, ONNX Runtime's shapes
  "$GHZ" --insecure --proto "$(proto_of "$v")" --import-paths proto --call "$(call_of "$v")" -D "$(data_of "$v")" \
    -c 8 -n 1000 "$ADDR" >/dev/null
done
describe_machine
for round in $(seq "$ROUNDS"); do
  for c in "${CALLERS[@]}"; do
    for v in "${VARIANTS[@]}"; do
      connections=$(( c < 4 ? c : 4 ))
      echo "== round $round: $v, $c callers" >&2
      server_cpu_before=$(cpu_seconds "$SERVER_PID")
      with_cpu_time "$OUT/$v-$c-$round.ghz-cpu" "$GHZ" --insecure --proto "$(proto_of "$v")" --import-paths proto --call "$(call_of "$v")" -D "$(data_of "$v")" \
        -c "$c" --connections "$connections" -z "${SECONDS_PER_POINT}s" --duration-stop wait \
        -O json -o "$OUT/$v-$c-$round.json" "$ADDR"
      echo "$server_cpu_before $(cpu_seconds "$SERVER_PID")" >"$OUT/$v-$c-$round.server-cpu"
    done
  done
done
stop_server
trap - EXIT

python3 - "$OUT" "$ROUNDS" "${CALLERS[@]}" <<'PY'
import json, statistics, sys, pathlib
out, rounds, callers = pathlib.Path(sys.argv[1]), int(sys.argv[2]), [int(c) for c in sys.argv[3:]]

def point(name):
    r = json.load(open(out / f"{name}.json"))
    pct = {int(d["percentage"]): d["latency"] / 1e6 for d in r.get("latencyDistribution") or []}
    codes = r.get("statusCodeDistribution") or {}
    calls = sum(codes.values())
    before, after = map(float, open(out / f"{name}.server-cpu").read().split())
    ghz_cpu = sum(map(float, open(out / f"{name}.ghz-cpu").read().split()[-2:]))
    return {"rate": codes.get("OK", 0) / (r["total"] / 1e9), "p50": pct[50], "p99": pct[99],
            "server_us": (after - before) / calls * 1e6, "ghz_us": ghz_cpu / calls * 1e6,
            "errors": sum(n for code, n in codes.items() if code != "OK")}

def median(variant, c, key):
    return statistics.median(point(f"{variant}-{c}-{r}")[key] for r in range(1, rounds + 1))

print(f"Medians of {rounds} interleaved rounds; ratios are ModelInfer / PredictOne.\n")
KEYS = ["rate", "p50", "p99", "server_us", "ghz_us"]
print("| callers | RPC | calls/s | p50 ms | p99 ms | server CPU us/call | ghz CPU us/call | errors | calls/s ratio | p50 ratio | p99 ratio | server CPU ratio |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
worst = {}
for c in callers:
    base = {k: median("predict-one", c, k) for k in KEYS}
    for variant, label in [("predict-one", "PredictOne"), ("model-infer-typed", "ModelInfer, typed"),
                           ("model-infer-raw", "ModelInfer, raw")]:
        m = {k: median(variant, c, k) for k in KEYS}
        errors = sum(point(f"{variant}-{c}-{r}")["errors"] for r in range(1, rounds + 1))
        ratios = "| | | |" if variant == "predict-one" else \
            f"{m['rate'] / base['rate']:.2f} | {m['p50'] / base['p50']:.2f} | {m['p99'] / base['p99']:.2f} | " \
            f"{m['server_us'] / base['server_us']:.2f} |"
        if variant != "predict-one":
            worst[label] = max(worst.get(label, 0.0), abs(1 - m["rate"] / base["rate"]))
        print(f"| {c} | {label} | {m['rate']:,.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {m['server_us']:.0f} | "
              f"{m['ghz_us']:.0f} | {errors} | {ratios}")
gaps = "; ".join(f"{label} {gap:.1%}" for label, gap in worst.items())
print(f"\nLargest throughput gap to PredictOne: {gaps} (target: within 10%).")
PY
