#!/usr/bin/env bash
# Phone-style photos (mnist::synth) read by the preprocessing and the model,
# per condition, and preprocessing time per input size: this checkout beside
# the preprocessing of BASE_REV (only src/preprocess.rs is taken from it), in
# one run (docs/preprocessing.md).
#
#   scripts/bench-photos.sh [PER_CONDITION] [BASE_REV]    default 200 a450f83
#
# BASE_REV's side is built in a temporary git worktree with its own target
# directory (target/bench-base), so the first run builds twice.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh runtime
source scripts/env.sh
export MNIST_DIR="${MNIST_DIR:-$ROOT/../shared/data/mnist}"
PER_CONDITION="${1:-200}"
BASE_REV="${2:-a450f83}"
OUT="$(mktemp -d)"

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)" >&2
echo "== this checkout ($(git rev-parse --short HEAD))" >&2
cargo build --release -q -p mnist-server --example photo_accuracy
target/release/examples/photo_accuracy --per-condition "$PER_CONDITION" >"$OUT/now.md"

echo "== preprocessing of $BASE_REV" >&2
BASE="$OUT/base"
git worktree add -q --detach "$BASE" HEAD
trap 'git worktree remove --force "$BASE"' EXIT
git -C "$BASE" checkout -q "$BASE_REV" -- src/preprocess.rs
(cd "$BASE" && CARGO_TARGET_DIR="$ROOT/target/bench-base" cargo build --release -q -p mnist-server --example photo_accuracy)
"$ROOT/target/bench-base/release/examples/photo_accuracy" --per-condition "$PER_CONDITION" >"$OUT/base.md"

python3 - "$OUT" "$BASE_REV" <<'PY'
import re, sys, pathlib
out, base_rev = pathlib.Path(sys.argv[1]), sys.argv[2]
def rows(name):
    text = (out / f"{name}.md").read_text()
    accuracy = {m.group(1): (m.group(2), m.group(3), m.group(4)) for m in
                re.finditer(r"^\| (\S+) \| (\d+/\d+) \| ([\d.]+) \| ([\d.]+) \|(?: [\d.]+ \|)?$", text, re.M)}
    overall = re.search(r"^\| \*\*all\*\* \| (\d+/\d+) \| \*\*([\d.]+)\*\* \|", text, re.M).groups()
    timing = dict(re.findall(r"^\| ([^|]+?) \| ([\d.]+) \|$", text, re.M))
    return accuracy, overall, timing, text.splitlines()[0]
(now, now_all, now_t, header), (base, base_all, base_t, _) = rows("now"), rows("base")
print(header + "\n")
print(f"| condition | before ({base_rev}) | now | before ms/photo | now ms/photo |")
print("|---|---:|---:|---:|---:|")
for name, (right, share, ms) in now.items():
    b = base.get(name, ("?", "nan", "nan"))
    print(f"| {name} | {b[1]} ({b[0]}) | **{share}** ({right}) | {b[2]} | {ms} |")
print(f"| **all** | {base_all[1]} ({base_all[0]}) | **{now_all[1]}** ({now_all[0]}) | | |")
print(f"\n| input | before ms | now ms |")
print("|---|---:|---:|")
for name, ms in now_t.items():
    print(f"| {name} | {base_t.get(name, 'nan')} | {ms} |")
PY
