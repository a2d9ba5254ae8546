#!/usr/bin/env bash
# Handwritten numbers read by this service and by Tesseract, side by side, on
# the same seeded photos (mnist::synth number photos of MNIST test digits:
# every spacing and condition), in one run (docs/reading-numbers.md).
#
#   scripts/read-peer.sh [COUNT] [SEED]      default 400 photos, seed 11
#
# Ours: `mnist-client read` against a release mnist-server serving models/
# (the reading model `mnist-reader` reads). Tesseract 5 (Debian's
# tesseract-ocr, installed with apt-get when root and missing): one line,
# digits only: `tesseract PHOTO stdout --psm 7 -c tessedit_char_whitelist=0123456789`.
# Prints a markdown table of the share of numbers read exactly, per spacing
# and per condition, and the seconds per photo of each.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
COUNT="${1:-400}"
SEED="${2:-11}"
scripts/setup.sh runtime
source scripts/env.sh
export MNIST_DIR="${MNIST_DIR:-$ROOT/../shared/data/mnist}"
if ! command -v tesseract >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get install -y -q tesseract-ocr >&2
  else
    echo "read-peer: needs tesseract (Debian: apt-get install tesseract-ocr)" >&2
    exit 2
  fi
fi
OUT="$(mktemp -d)"
PORT="${PORT:-50077}"
cleanup() { [[ -n "${SERVER:-}" ]] && kill "$SERVER" 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F); $(tesseract --version 2>&1 | head -1)" >&2
cargo build --release -q -p mnist-server -p mnist-client
cargo build --release -q --features synth --example number_photos
target/release/examples/number_photos "$OUT/photos" --count "$COUNT" --seed "$SEED" >&2
target/release/mnist-server --model-repository models --default-model mnist --addr "127.0.0.1:$PORT" 2>"$OUT/server.log" &
SERVER=$!
for _ in $(seq 100); do
  target/release/mnist-client --server "http://127.0.0.1:$PORT" health >/dev/null 2>&1 && break
  sleep 0.2
done

ours_start=$EPOCHREALTIME
target/release/mnist-client --server "http://127.0.0.1:$PORT" read "$OUT/photos" --format csv --quiet >"$OUT/ours.csv"
ours_end=$EPOCHREALTIME

tesseract_start=$EPOCHREALTIME
for photo in "$OUT"/photos/*.jpg; do
  printf '%s,%s\n' "$photo" "$(tesseract "$photo" stdout --psm 7 -c tessedit_char_whitelist=0123456789 2>/dev/null | tr -cd '0-9')"
done >"$OUT/tesseract.csv"
tesseract_end=$EPOCHREALTIME

python3 - "$OUT" "$SEED" "$ours_start" "$ours_end" "$tesseract_start" "$tesseract_end" <<'PY'
import csv, sys, pathlib, collections
out, seed = pathlib.Path(sys.argv[1]), sys.argv[2]
ours_s = float(sys.argv[4]) - float(sys.argv[3])
tess_s = float(sys.argv[6]) - float(sys.argv[5])
ours = {row["path"]: row["text"] for row in csv.DictReader(open(out / "ours.csv"))}
tess = dict(line.rstrip("\n").split(",", 1) for line in open(out / "tesseract.csv"))
def truth(path):
    name = pathlib.Path(path).stem            # NNNN-spacing-condition-digits
    parts = name.split("-")
    return parts[1], "-".join(parts[2:-1]), parts[-1]
cells = collections.defaultdict(lambda: [0, 0, 0])
for path in tess:
    spacing, condition, digits = truth(path)
    for key in (("spacing", spacing), ("condition", condition), ("all", "all")):
        cell = cells[key]
        cell[0] += ours.get(path) == digits
        cell[1] += tess[path] == digits
        cell[2] += 1
print(f"{len(tess)} photos (seed {seed}, 640 px), share of numbers read exactly:\n")
for kind in ("spacing", "condition"):
    print(f"| {kind} | photos | mnist-client read | Tesseract 5 (--psm 7, digits) |")
    print("|---|---:|---:|---:|")
    for (k, name), (o, t, n) in sorted(cells.items()):
        if k == kind:
            print(f"| {name} | {n} | **{o / n:.3f}** ({o}) | {t / n:.3f} ({t}) |")
    print()
o, t, n = cells[("all", "all")]
print(f"| **all** | {n} | **{o / n:.3f}** ({o}) | {t / n:.3f} ({t}) |\n")
print(f"seconds per photo, whole run: mnist-client read {ours_s / n:.4f} (all files through one server), "
      f"Tesseract {tess_s / n:.4f} (one process per photo, as its CLI runs)")
PY
