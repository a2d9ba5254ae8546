#!/usr/bin/env bash
# Numbers per second through the server under load (docs/benchmarks.md,
# "Reading numbers"): ghz calls ReadOne with a photo of a 6-digit number
# (examples/requests/read.json, 640x184 JPEG) as a request naming no model
# is read by default (mnist-reader, its digits standing alone checked by
# mnist-three-block), then naming mnist-reader (the window model alone,
# unchecked), and, as the baseline in the same run, PredictOne with one
# digit's PNG (examples/requests/png.json): a number is a decode, a
# segmentation, a batch of windows and a batch of the digits standing
# alone; a digit is a decode and one image. Every shipped model is served,
# as scripts/serve.sh does; Predict uses mnist (the default model).
#
#   scripts/bench-read.sh [SECONDS] [CONCURRENCY...]     default 10 s at 1, 8 and 32 callers
#   GHZ=/path/to/ghz scripts/bench-read.sh               default ../shared/tools/ghz
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
SECONDS_PER_POINT="${1:-10}"
shift || true
LEVELS=("$@")
[[ ${#LEVELS[@]} -gt 0 ]] || LEVELS=(1 8 32)
require_ghz bench-read
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server
describe_machine
start_server "$OUT" --model-repository models --default-model mnist
trap stop_server EXIT
GHZ_BASE=("$GHZ" --insecure --proto proto/mnist/v1/classifier.proto --import-paths proto)
DIGITS=$(python3 -c "import json; print(len(json.load(open('examples/requests/read.json'))['id'].rsplit('-', 1)[1]))")
# The same photo, read by the window model alone.
python3 -c "import json, sys; r = json.load(open('examples/requests/read.json')); r['model'] = 'mnist-reader'; json.dump(r, open(sys.argv[1], 'w'))" "$OUT/read-one-reader.json"
# Warm-up: every model's first batches, the decoder, the allocator.
"${GHZ_BASE[@]}" --call mnist.v1.Classifier.ReadOne -D examples/requests/read.json -c 4 -n 200 "$ADDR" >/dev/null
"${GHZ_BASE[@]}" --call mnist.v1.Classifier.PredictOne -D examples/requests/png.json -c 4 -n 500 "$ADDR" >/dev/null
for c in "${LEVELS[@]}"; do
  for variant in ReadOne ReadOneAlone PredictOne; do
    call=$variant data=examples/requests/read.json
    [[ $variant == ReadOneAlone ]] && call=ReadOne data="$OUT/read-one-reader.json"
    [[ $variant == PredictOne ]] && data=examples/requests/png.json
    echo "== $variant, $c callers, ${SECONDS_PER_POINT} s" >&2
    "${GHZ_BASE[@]}" --call "mnist.v1.Classifier.$call" -D "$data" -c "$c" --connections "$(( c < 4 ? c : 4 ))" \
      -z "${SECONDS_PER_POINT}s" --duration-stop wait -O json -o "$OUT/$variant-$c.json" "$ADDR"
  done
done
stop_server
trap - EXIT
python3 - "$OUT" "$DIGITS" "${LEVELS[@]}" <<'PY'
import sys, pathlib
sys.path.insert(0, "scripts")
from ghz_report import point
out, digits, levels = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
names = {
    "ReadOne": f"ReadOne, default: mnist-reader, checked ({digits} digits)",
    "ReadOneAlone": f"ReadOne, mnist-reader alone, unchecked ({digits} digits)",
    "PredictOne": "PredictOne (one PNG digit)",
}
print("| callers | call | calls/s | digits/s | p50 ms | p99 ms | errors | calls/s per PredictOne/s |")
print("|---:|---|---:|---:|---:|---:|---:|---:|")
for c in levels:
    p_rps = point(out, f"PredictOne-{c}")["rps"]
    for variant, name in names.items():
        f = point(out, f"{variant}-{c}")
        per = 1 if variant == "PredictOne" else digits
        print(f"| {c} | {name} | **{f['rps']:,.0f}** | {f['rps'] * per:,.0f} | {f['p50']:.2f} | {f['p99']:.2f} | {f['errors']} | {f['rps'] / p_rps:.3f} |")
PY
