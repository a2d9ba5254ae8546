#!/usr/bin/env bash
# The server under ghz, the load tester its users use, beside the in-process
# ceiling, in one run (docs/benchmarks.md, "Under ghz"):
#   1. the ceiling: ONNX Runtime alone (server/examples/ceiling.rs);
#   2. where a lone PredictOne's time goes, from the server's own metrics;
#   3. PredictOne and Predict (streams of 100 images) under ghz at 1, 8, 64
#      and 256 concurrent callers, batching on (defaults) and off
#      (--max-batch-size 1): tail ratios, throughput against the ceiling,
#      and the latency-against-throughput chart;
#   4. mnist-client bench at the same unary loads, to compare with ghz;
#   5. PredictOne offered at 10x its saturation (as scripts/overload.sh).
#
#   scripts/bench-ghz.sh [SECONDS_PER_POINT] [PLOT.png]   default 5, docs/img/latency-throughput.png
#   GHZ=/path/to/ghz scripts/bench-ghz.sh                   default ../shared/tools/ghz
#   MODEL=models/mnist-int8.onnx scripts/bench-ghz.sh       the int8 model (ceiling and server alike)
#   CORES=split scripts/bench-ghz.sh                        server on core 0, load generators on core 1
#   SERVER_FLAGS="--network-nice 0" scripts/bench-ghz.sh    extra mnist-server flags
#
# CORES=shared (the default): server, ghz and mnist-client share all the
# machine's cores, as the issue's targets are defined. CORES=split: the
# ceiling and the server (one ONNX Runtime thread) on core 0, ghz and
# mnist-client on core 1, as when callers run on other hosts: the load
# generator's CPU is then not taken from the server. Compare within one
# run, as ratios.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
SECONDS_PER_POINT="${1:-5}"
MODEL="${MODEL:-models/mnist.onnx}"
read -r -a EXTRA_SERVER_FLAGS <<<"${SERVER_FLAGS:-}"
cores_layout bench-ghz
if [[ $CORES == split ]]; then PLOT="${2:-docs/img/latency-throughput-split.png}"; else PLOT="${2:-docs/img/latency-throughput.png}"; fi
require_ghz bench-ghz
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server -p mnist-client --example ceiling --example latency_plot
ulimit -n 65536 2>/dev/null || true
CALLERS=(1 8 64 256)
STREAM_IMAGES=100

# Request bodies: one digit for PredictOne (examples/requests/pixels.json);
# STREAM_IMAGES digits for one Predict call.
write_stream_requests "$OUT/stream.json" "$STREAM_IMAGES"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

GHZ_BASE=(${LOAD[@]+"${LOAD[@]}"} "$GHZ" ${GHZ_CPUS[@]+"${GHZ_CPUS[@]}"} --insecure
  --proto proto/mnist/v1/classifier.proto --import-paths proto)
# MEASURE=(python3 -c "$RUSAGE_PY" FILE): ghz_run then writes ghz's CPU
# seconds (user + system) to FILE.
RUSAGE_PY='import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{r.ru_utime + r.ru_stime}\n")
sys.exit(code)'
MEASURE=()

ghz_run() {  # name, callers, then ghz flags
  local name="$1" callers="$2"; shift 2
  local connections=$(( callers < 4 ? callers : 4 ))
  echo "== ghz $name: $callers callers on $connections connection(s)" >&2
  ${MEASURE[@]+"${MEASURE[@]}"} "${GHZ_BASE[@]}" \
    -c "$callers" --connections "$connections" -z "${SECONDS_PER_POINT}s" --duration-stop wait \
    -O json -o "$OUT/$name.json" "$@" "$ADDR"
}
ghz_unary() { ghz_run "$1" "$2" --call mnist.v1.Classifier.PredictOne -D examples/requests/pixels.json; }

# thread_cpu FILE: CPU seconds so far of each of the server's threads, summed by thread name.
thread_cpu() {
  local ticks; ticks=$(getconf CLK_TCK)
  for task in /proc/"$SERVER_PID"/task/*; do
    echo "$(tr ' ' _ <"$task/comm") $(sed 's/.*) //' "$task/stat" | awk -v t="$ticks" '{print ($12 + $13) / t}')"
  done | awk '{cpu[$1] += $2} END {for (name in cpu) print name, cpu[name]}' | sort >"$1"
}

ghz_stream() { ghz_run "$1" "$2" --call mnist.v1.Classifier.Predict -D "$OUT/stream.json"; }

client_bench() {  # name, then mnist-client bench flags
  local name="$1"; shift
  echo "== mnist-client bench $name" >&2
  ${LOAD[@]+"${LOAD[@]}"} target/release/mnist-client --server "http://$ADDR" bench --format json "$@" >"$OUT/$name.json"
}

scrape() { curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$OUT/$1.prom"; }

describe_machine
echo "== cores: $CORES; model: $MODEL; server flags: ${SERVER_FLAGS:-none}" >&2
echo "== ceiling" >&2
${SERVER_LAUNCHER[@]+"${SERVER_LAUNCHER[@]}"} target/release/examples/ceiling --model "$MODEL" ${ONNX_THREADS[@]+"${ONNX_THREADS[@]}"} --seconds 3 1 8 32 64 128 256 | tee "$OUT/ceiling.md" >&2

for batching in on off; do
  METRICS_PORT=$(free_port)
  flags=(--model "$MODEL" --metrics-addr "127.0.0.1:$METRICS_PORT" ${ONNX_THREADS[@]+"${ONNX_THREADS[@]}"}
    ${EXTRA_SERVER_FLAGS[@]+"${EXTRA_SERVER_FLAGS[@]}"})
  [[ $batching == off ]] && flags+=(--max-batch-size 1)
  start_server "$OUT" "${flags[@]}"
  trap stop_server EXIT
  # Warm both sides up (connections, ONNX Runtime's shapes).
  "${GHZ_BASE[@]}" --call mnist.v1.Classifier.PredictOne -D examples/requests/pixels.json -c 8 -n 2000 "$ADDR" >/dev/null
  if [[ $batching == on ]]; then
    scrape before-lone
    ghz_unary lone 1
    scrape after-lone
  fi
  for c in "${CALLERS[@]}"; do
    if [[ $batching == on && $c == 64 ]]; then
      # Where the cores go at this load: the server's threads and ghz.
      thread_cpu "$OUT/threads-before"
      MEASURE=(python3 -c "$RUSAGE_PY" "$OUT/ghz-cpu")
      ghz_unary "unary-$c-$batching" "$c"
      MEASURE=()
      thread_cpu "$OUT/threads-after"
    else
      ghz_unary "unary-$c-$batching" "$c"
    fi
  done
  for c in "${CALLERS[@]}"; do ghz_stream "stream-$c-$batching" "$c"; done
  if [[ $batching == on ]]; then
    for c in 1 8 64; do
      connections=$(( c < 4 ? c : 4 ))
      client_bench "client-unary-$c" --mode unary --concurrency "$c" --connections "$connections" \
        --duration "$SECONDS_PER_POINT" --warmup 500
    done
    # Overload as in scripts/overload.sh: saturation U, then 10 x U offered.
    client_bench saturation --mode unary --concurrency 256 --connections 8 --duration "$SECONDS_PER_POINT" --warmup 2000
    rate=$(python3 -c "import json; print(round(json.load(open('$OUT/saturation.json'))['throughput'] * 10))")
    client_bench overload --mode unary --concurrency 8192 --connections 8 --rate "$rate" \
      --duration "$SECONDS_PER_POINT" --warmup 0
  fi
  stop_server
  trap - EXIT
done

CORES="$CORES" MODEL="$MODEL" python3 - "$OUT" "$STREAM_IMAGES" "${CALLERS[@]}" <<'PY'
import json, os, re, sys, pathlib
out, stream_images, callers = pathlib.Path(sys.argv[1]), int(sys.argv[2]), [int(c) for c in sys.argv[3:]]
load = lambda name: json.load(open(out / f"{name}.json"))
ceiling_text = open(out / "ceiling.md").read()
ceiling = float(re.search(r"^ceiling of [^:]+: (\d+)", ceiling_text, re.M).group(1))
batch1_ms = float(re.search(r"^\| [^|]+ \| 1 \| \d+ \| ([\d.]+) \|", ceiling_text, re.M).group(1))

def ghz(name, images_per_call=1):
    """images/s, p50 ms, p99 ms, calls, errors of a ghz report."""
    r = load(name)
    pct = {int(d["percentage"]): d["latency"] / 1e6 for d in r.get("latencyDistribution") or []}
    codes = r.get("statusCodeDistribution") or {}
    errors = sum(n for code, n in codes.items() if code != "OK")
    ok = codes.get("OK", 0)
    seconds = r["total"] / 1e9
    return {"rate": ok * images_per_call / seconds, "p50": pct.get(50, float("nan")),
            "p99": pct.get(99, float("nan")), "calls": ok, "errors": errors}

cores = os.environ.get("CORES", "shared")
print(f"cores: {cores} ({'server and load generators on all cores' if cores == 'shared' else 'server on core 0 with one ONNX Runtime thread, ghz and mnist-client on core 1'})\n")
print(f"ceiling: {ceiling:.0f} images/s (best batch); in-process batch 1: {batch1_ms:.3f} ms\n")
points = []
for rpc, unit, per_call in [("unary", "PredictOne", 1), ("stream", f"Predict, streams of {stream_images}", stream_images)]:
    print(f"### {unit} under ghz\n")
    print("| callers | batching | calls OK | errors | images/s | x ceiling | p50 ms | p99 ms | p99 / p50 |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for batching in ["on", "off"]:
        for c in callers:
            g = ghz(f"{rpc}-{c}-{batching}", per_call)
            points.append((unit, batching, c, g["rate"], g["p50"], g["p99"]))
            print(f"| {c} | {batching} | {g['calls']:,} | {g['errors']} | {g['rate']:,.0f} | {g['rate'] / ceiling:.2f} | "
                  f"{g['p50']:.3f} | {g['p99']:.3f} | {g['p99'] / g['p50']:.2f} |")
    print()
with open(out / "curve.tsv", "w") as f:
    for p in points:
        f.write("\t".join(str(v) for v in p) + "\n")

print("### The same unary loads, ghz and mnist-client bench\n")
print("| callers | ghz images/s | bench images/s | ratio | ghz p99 ms | bench p99 ms | ratio |")
print("|---:|---:|---:|---:|---:|---:|---:|")
agreement = []
for c in [1, 8, 64]:
    g, b = ghz(f"unary-{c}-on"), load(f"client-unary-{c}")
    rate_ratio, p99_ratio = b["throughput"] / g["rate"], b["latency_ms"]["p99"] / g["p99"]
    agreement += [rate_ratio, p99_ratio]
    print(f"| {c} | {g['rate']:,.0f} | {b['throughput']:,.0f} | {rate_ratio:.2f} | {g['p99']:.3f} | "
          f"{b['latency_ms']['p99']:.3f} | {p99_ratio:.2f} |")
print()

# Where a lone request's time goes: means over the lone-caller run, from
# the server's histograms (sum and count differences).
MODEL_NAME = pathlib.Path(os.environ["MODEL"]).stem
def histograms(name):
    sums, counts = {}, {}
    for line in open(out / f"{name}.prom"):
        m = re.match(r'^(\w+)_(sum|count)(\{[^}]*\})? ([\d.eE+-]+)$', line.strip())
        if m:
            (sums if m.group(2) == "sum" else counts)[m.group(1) + (m.group(3) or "")] = float(m.group(4))
    return sums, counts
(s0, c0), (s1, c1) = histograms("before-lone"), histograms("after-lone")
def mean_us(key):
    n = c1.get(key, 0) - c0.get(key, 0)
    return (s1.get(key, 0) - s0.get(key, 0)) / n * 1e6 if n else float("nan")
lone = ghz("lone")
lone_report = load("lone")
stages = [
    ("receive: HTTP/2 frames to the handler (protobuf decode, auth)", 'mnist_stage_duration_seconds{stage="receive"}'),
    ("preprocess: validate the 784 pixels", 'mnist_stage_duration_seconds{stage="preprocess"}'),
    # The batcher's figures carry the served model's name (the file's stem).
    ("queue wait: queued to batch start", f'mnist_queue_wait_seconds{{model="{MODEL_NAME}"}}'),
    ("inference: ONNX Runtime, batch of 1", f'mnist_inference_duration_seconds{{model="{MODEL_NAME}"}}'),
    ("respond: answer to last frame (protobuf encode, to HTTP/2)", 'mnist_stage_duration_seconds{stage="respond"}'),
]
server_total = mean_us('mnist_request_duration_seconds{protocol="mnist.v1",method="PredictOne"}')
client_mean = lone_report["average"] / 1e3
print(f"### Where a lone PredictOne's time goes (1 ghz caller, {lone['calls']:,} calls, means)\n")
print("| stage | us | share of ghz's mean |")
print("|---|---:|---:|")
listed = 0.0
for label, key in stages:
    v = mean_us(key)
    listed += v
    print(f"| {label} | {v:.1f} | {v / client_mean:.0%} |")
print(f"| handler total (admission to answer, includes preprocess, queue, inference, wake-ups) | {server_total:.1f} | {server_total / client_mean:.0%} |")
rest = client_mean - listed
print(f"| the rest: wake-ups between stages, kernel loopback, ghz's own work | {rest:.1f} | {rest / client_mean:.0%} |")
print(f"| **ghz mean latency** | **{client_mean:.1f}** | 100% |")
print()

sat, over = load("saturation"), load("overload")
over_errors = ", ".join(f"{k} {v:,}" for k, v in sorted(over["errors"].items())) or "none"
print(f"### PredictOne offered at 10x its saturation (mnist-client bench, 8,192 callers)\n")
print(f"saturation {sat['throughput']:,.0f} images/s (256 callers); at 10x offered: {over['throughput']:,.0f} answered "
      f"= {over['throughput'] / sat['throughput']:.2f} of saturation; p50 {over['latency_ms']['p50']:.1f} ms, "
      f"p99 {over['latency_ms']['p99']:.1f} ms; refusals: {over_errors}\n")

# Where the cores went during ghz PredictOne at 64 callers.
def thread_seconds(name):
    return {n: float(v) for n, v in (line.split() for line in open(out / name))}
before, after = thread_seconds("threads-before"), thread_seconds("threads-after")
wall = load("unary-64-on")["total"] / 1e9
roles = {"tokio-rt-worker": "network: tokio's threads (HTTP/2, protobuf, admission)",
         "inference": "inference thread (batching, ONNX Runtime's first thread)",
         "ort-intra-op": "ONNX Runtime's other intra-op threads"}
print(f"### Where the cores go: ghz PredictOne, 64 callers, {wall:.1f} s\n")
print("| who | cores |")
print("|---|---:|")
for name in sorted(after, key=lambda n: -(after[n] - before.get(n, 0))):
    used = (after[name] - before.get(name, 0)) / wall
    if used >= 0.005:
        print(f"| mnist-server: {roles.get(name, name)} | {used:.2f} |")
print(f"| ghz | {float(open(out / 'ghz-cpu').read()) / wall:.2f} |")
print(f"| (machine) | {os.cpu_count()} |\n")

u64, s8, l1 = ghz("unary-64-on"), ghz("stream-8-on", stream_images), ghz("unary-1-on")
worst = max((ghz(f"{rpc}-{c}-on", n)["p99"] / ghz(f"{rpc}-{c}-on", n)["p50"], f"{rpc} {c}")
            for rpc, n in [("unary", 1), ("stream", stream_images)] for c in callers)
print("### Against the targets\n")
print("| target | measured | |")
print("|---|---|---|")
def row(target, measured, ok):
    print(f"| {target} | {measured} | {'met' if ok else 'NOT met'} |")
row("p99 <= 2.5 x p50, both RPCs, 1-256 callers (batching on)", f"worst {worst[0]:.2f} ({worst[1]} callers)", worst[0] <= 2.5)
row("lone PredictOne p99 <= 1 ms", f"{l1['p99']:.3f} ms", l1["p99"] <= 1.0)
row("PredictOne, 64 callers >= 0.5 x ceiling", f"{u64['rate'] / ceiling:.2f}", u64["rate"] / ceiling >= 0.5)
row(f"Predict, 8 streams of {stream_images} >= 0.85 x ceiling", f"{s8['rate'] / ceiling:.2f}", s8["rate"] / ceiling >= 0.85)
row("mnist-client bench and ghz within 20 % (throughput, p99)", f"ratios {min(agreement):.2f}-{max(agreement):.2f}",
    all(0.8 <= a <= 1.2 for a in agreement))
row("PredictOne at 10x saturation: answered >= 0.8 x saturation", f"{over['throughput'] / sat['throughput']:.2f}",
    over["throughput"] / sat["throughput"] >= 0.8)
PY
mkdir -p "$(dirname "$PLOT")"
target/release/examples/latency_plot "$OUT/curve.tsv" "$PLOT"
echo "chart: $PLOT (raw results in $OUT)" >&2
