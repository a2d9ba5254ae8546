#!/usr/bin/env bash
# What classifying image files with the photo model costs (docs/benchmarks.md,
# "The photo model"): ghz calls PredictOne with a phone-style photo of one
# digit (examples/digits/photo-label-4.jpg, 280x280 JPEG) naming no model,
# which a server serving every shipped model gives to mnist-photo (the
# three-block network), and the same photo naming mnist (the reference
# network), and, beside them in the same run, MNIST's own form naming no
# model, which stays with the default mnist: pixels
# (examples/requests/pixels.json) and a 28x28 PNG (examples/requests/png.json).
# The four alternate at each level of callers, on one server.
#
#   scripts/bench-photo-model.sh [SECONDS] [CONCURRENCY...]     default 10 s at 1, 8 and 32 callers
#   GHZ=/path/to/ghz scripts/bench-photo-model.sh               default ../shared/tools/ghz
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
SECONDS_PER_POINT="${1:-10}"
shift || true
LEVELS=("$@")
[[ ${#LEVELS[@]} -gt 0 ]] || LEVELS=(1 8 32)
require_ghz bench-photo-model
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server
describe_machine
python3 - "$OUT" <<'PY'
import base64, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
image = base64.b64encode(pathlib.Path("examples/digits/photo-label-4.jpg").read_bytes()).decode()
json.dump({"id": "photo", "image": image}, open(out / "photo.json", "w"))
json.dump({"id": "photo", "image": image, "model": "mnist"}, open(out / "photo-mnist.json", "w"))
PY
start_server "$OUT" --model-repository models --default-model mnist
trap stop_server EXIT
GHZ_BASE=("$GHZ" --insecure --proto proto/mnist/v1/classifier.proto --import-paths proto --call mnist.v1.Classifier.PredictOne)
# Warm-up: both models' first batches, the decoder, the allocator.
for data in "$OUT/photo.json" "$OUT/photo-mnist.json" examples/requests/pixels.json examples/requests/png.json; do
  "${GHZ_BASE[@]}" -D "$data" -c 4 -n 300 "$ADDR" >/dev/null
done
for c in "${LEVELS[@]}"; do
  for variant in photo photo-mnist pixels png; do
    data="$OUT/$variant.json"
    [[ $variant == pixels || $variant == png ]] && data="examples/requests/$variant.json"
    echo "== $variant, $c callers, ${SECONDS_PER_POINT} s" >&2
    "${GHZ_BASE[@]}" -D "$data" -c "$c" --connections "$(( c < 4 ? c : 4 ))" \
      -z "${SECONDS_PER_POINT}s" --duration-stop wait -O json -o "$OUT/$variant-$c.json" "$ADDR"
  done
done
stop_server
trap - EXIT
python3 - "$OUT" "${LEVELS[@]}" <<'PY'
import sys, pathlib
sys.path.insert(0, "scripts")
from ghz_report import point
out, levels = pathlib.Path(sys.argv[1]), sys.argv[2:]
names = {
    "photo": "photo, no model named: mnist-photo",
    "photo-mnist": "photo, naming mnist",
    "pixels": "MNIST pixels, no model named: mnist",
    "png": "28x28 PNG, no model named: mnist",
}
print("| callers | PredictOne | calls/s | p50 ms | p99 ms | errors | calls/s per the photo naming mnist |")
print("|---:|---|---:|---:|---:|---:|---:|")
for c in levels:
    base = point(out, f"photo-mnist-{c}")["rps"]
    for variant, name in names.items():
        f = point(out, f"{variant}-{c}")
        print(f"| {c} | {name} | **{f['rps']:,.0f}** | {f['p50']:.2f} | {f['p99']:.2f} | {f['errors']} | {f['rps'] / base:.3f} |")
PY
