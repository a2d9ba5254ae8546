#!/usr/bin/env bash
# The int8 model beside the float model, side by side in one run
# (docs/benchmarks.md, "int8 against float"):
#   1. the in-process ceiling of both (server/examples/ceiling.rs, every
#      batch size measured on both models in turn) and the CPU features
#      ONNX Runtime's kernels had to work with;
#   2. which integer instructions ONNX Runtime ran (perf and objdump, when
#      installed);
#   3. the server on each model: accuracy through gRPC (mnist-client eval),
#      a lone unary caller, saturation (64 streams x 8 in flight), and ghz
#      PredictOne at 64 callers when ghz is there.
#
#   scripts/bench-int8.sh [SECONDS_PER_POINT]     default 5
#
# Compare within one run, as ratios: machines differ (AVX-512 VNNI, AVX2).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
SECONDS_PER_POINT="${1:-5}"
FLOAT=models/mnist.onnx
INT8=models/mnist-int8.onnx
GHZ="${GHZ:-$ROOT/../shared/tools/ghz}"
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server -p mnist-client --example ceiling

flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E -x 'avx2|avx512f|avx512bw|avx512_vnni|avx_vnni|amx_tile|amx_int8' | xargs)
describe_machine
echo "== CPU features for int8 kernels: ${flags:-none of avx2/avx512/vnni}" | tee "$OUT/features.txt" >&2
echo "== ceiling: $FLOAT and $INT8, batch by batch" >&2
target/release/examples/ceiling --seconds 3 --model "$FLOAT" --model "$INT8" 1 8 32 64 128 256 | tee "$OUT/ceiling.md" >&2

if command -v perf >/dev/null && command -v objdump >/dev/null; then
  # libonnxruntime.so is stripped, so kernels have no names: read the
  # instructions at the hottest sampled addresses instead (tdpbusd: AMX-INT8;
  # vpdpbusd on zmm: AVX-512 VNNI, on ymm: AVX-VNNI; vpmaddubsw: AVX2 or
  # AVX-512BW without VNNI).
  echo "== kernels: perf on the int8 ceiling at batch 64" >&2
  perf record -q -o "$OUT/perf.data" -- target/release/examples/ceiling --seconds 2 --model "$INT8" 64 >/dev/null 2>&1 || true
  perf report -i "$OUT/perf.data" --stdio --sort dso,symbol 2>/dev/null >"$OUT/perf.txt" || true
  python3 - "$OUT/perf.txt" "$ORT_DYLIB_PATH" >"$OUT/kernels.txt" <<'PY' || true
import collections, re, subprocess, sys
report, library = sys.argv[1], sys.argv[2]
families = collections.Counter()
total = 0.0
for line in open(report):
    m = re.match(r"\s+([\d.]+)%\s+libonnxruntime\S*\s+\[\.\]\s+0x([0-9a-f]+)", line)
    if not m:
        continue
    share, address = float(m.group(1)), int(m.group(2), 16)
    total += share
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={address - 12}",
                           f"--stop-address={address + 12}", library], capture_output=True, text=True).stdout
    if "tdpbusd" in text:
        families["AMX-INT8 (tdpbusd)"] += share
    elif re.search(r"vpdpbusds?\s+%zmm", text):
        families["AVX-512 VNNI (vpdpbusd zmm)"] += share
    elif re.search(r"vpdpbusds?\s+%ymm", text):
        families["AVX-VNNI (vpdpbusd ymm)"] += share
    elif "vpmaddubsw" in text:
        families["AVX2 / AVX-512BW (vpmaddubsw)"] += share
    else:
        families["other ONNX Runtime code"] += share
print(f"ONNX Runtime's share of the int8 ceiling's CPU samples: {total:.1f}%, by the instructions at the sampled addresses:")
for family, share in families.most_common():
    print(f"- {family}: {share:.1f}% of all samples")
PY
  cat "$OUT/kernels.txt" >&2
fi

for model in "$FLOAT" "$INT8"; do
  name=$(basename "$model" .onnx)
  start_server "$OUT" --model "$model"
  echo "== $name: eval, one unary caller, saturation" >&2
  target/release/mnist-client --server "http://$ADDR" eval --format json --quiet >"$OUT/$name-eval.json"
  target/release/mnist-client --server "http://$ADDR" bench --mode unary --concurrency 1 \
    --duration "$SECONDS_PER_POINT" --warmup 200 --format json >"$OUT/$name-unary1.json"
  target/release/mnist-client --server "http://$ADDR" bench --mode stream --concurrency 64 --window 8 \
    --duration "$SECONDS_PER_POINT" --warmup 500 --format json >"$OUT/$name-saturation.json"
  if [[ -x "$GHZ" ]]; then
    "$GHZ" --insecure --proto proto/mnist/v1/classifier.proto --import-paths proto \
      --call mnist.v1.Classifier.PredictOne -D examples/requests/pixels.json \
      -c 64 --connections 4 -z "${SECONDS_PER_POINT}s" --duration-stop wait -O json -o "$OUT/$name-ghz64.json" "$ADDR"
  fi
  stop_server
done

python3 - "$OUT" <<'PY'
import json, pathlib, re, sys
out = pathlib.Path(sys.argv[1])
load = lambda n: json.load(open(out / n))
text = (out / "ceiling.md").read_text()
rows = re.findall(r"^\| (\S+) \| (\d+) \| (\d+) \| ([\d.]+) \|", text, re.M)
print(open(out / "features.txt").read().strip().lstrip("= "))
print("\n| batch | float images/s | int8 images/s | int8 / float | float ms/batch | int8 ms/batch |")
print("|---:|---:|---:|---:|---:|---:|")
by = {}
for model, batch, rate, ms in rows:
    by.setdefault(int(batch), {})[model] = (int(rate), float(ms))
for batch, m in sorted(by.items()):
    f, i = m["mnist.onnx"], m["mnist-int8.onnx"]
    print(f"| {batch} | {f[0]:,} | {i[0]:,} | {i[0] / f[0]:.2f} | {f[1]:.3f} | {i[1]:.3f} |")
best = lambda name: max(m[name][0] for m in by.values())
print(f"\nceiling: float {best('mnist.onnx'):,}, int8 {best('mnist-int8.onnx'):,} images/s: "
      f"**{best('mnist-int8.onnx') / best('mnist.onnx'):.2f}x**")
kernels = out / "kernels.txt"
if kernels.exists() and kernels.read_text().strip():
    print("\n" + kernels.read_text().rstrip())
print("\n| model | accuracy via gRPC | 1 unary caller p50 / p99 ms | saturation images/s | ghz PredictOne 64 callers calls/s, p99 ms |")
print("|---|---:|---:|---:|---:|")
for name in ["mnist", "mnist-int8"]:
    e, u, s = load(f"{name}-eval.json"), load(f"{name}-unary1.json"), load(f"{name}-saturation.json")
    g = out / f"{name}-ghz64.json"
    ghz = "not run"
    if g.exists():
        g = json.load(open(g))
        p99 = [d["latency"] for d in g.get("latencyDistribution") or [] if d["percentage"] == 99]
        ghz = f"{g['rps']:,.0f}, {p99[0] / 1e6:.2f}" if p99 else "no latencies"
    print(f"| {name}.onnx | {e['accuracy'] * 100:.2f}% | {u['latency_ms']['p50']:.3f} / {u['latency_ms']['p99']:.3f} "
          f"| {s['throughput']:,.0f} | {ghz} |")
PY
