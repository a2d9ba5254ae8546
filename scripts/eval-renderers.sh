#!/usr/bin/env bash
# Single-digit photos from two renderers written apart, read by the served
# models the way a user reads them (`mnist-client predict`, preprocessing in
# the client, the server run bare: every model of models/), and scored per
# condition (docs/preprocessing.md, "Two renderers"):
#
#   1. mnist::synth, the generator the photo model is trained on and the
#      preprocessing is tuned with (examples/synth_photos.rs);
#   2. scripts/second_renderer.py, other lighting, chalk, paper and crops,
#      plus photos with nothing to read: for measuring only.
#
#   scripts/eval-renderers.sh [PER_CONDITION] [SEED] [--send-encoded]
#        default 100 photos per condition, seed 2026
#
# With --send-encoded the server decodes and preprocesses instead.
# Prints both tables (markdown) and leaves the photos and answers in $OUT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PER_CONDITION="${1:-100}"
SEED="${2:-2026}"
SEND=()
[[ "${3:-}" == "--send-encoded" ]] && SEND=(--send-encoded)
scripts/setup.sh runtime render >&2
source scripts/env.sh
export MNIST_DIR="${MNIST_DIR:-$ROOT/../shared/data/mnist}"
PY="${MNIST_VENV:-$ROOT/.venv}/bin/python"
OUT="${OUT:-$(mktemp -d)}"
PORT="${PORT:-50391}"

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F), $(git rev-parse --short HEAD)" >&2
cargo build --release -q -p mnist-server -p mnist-client
cargo build --release -q --features synth --example synth_photos
target/release/examples/synth_photos "$OUT/synth" --per-condition "$PER_CONDITION" --seed "$SEED"
"$PY" scripts/second_renderer.py "$OUT/second" --per-condition "$PER_CONDITION" --seed "$SEED"

target/release/mnist-server --addr "127.0.0.1:$PORT" >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  target/release/mnist-client --server "http://127.0.0.1:$PORT" info >/dev/null 2>&1 && break
  sleep 0.2
done
for set in synth second; do
  target/release/mnist-client --server "http://127.0.0.1:$PORT" predict "$OUT/$set" -r --format json "${SEND[@]}" \
    >"$OUT/$set.json" 2>"$OUT/$set.err" || true
  echo
  echo "### ${set} renderer, ${PER_CONDITION} photos per condition, seed ${SEED}${SEND:+, sent encoded}"
  echo
  "$PY" scripts/score_photos.py "$OUT/$set/labels.csv" "$OUT/$set.json" --markdown
done
grep -h "polarity\|no digit" "$OUT/server.log" | tail -3 >&2 || true
echo "photos and answers: $OUT" >&2
