#!/usr/bin/env bash
# Soak: a steady load at a fraction of saturation for a long time, against
# one server process. Measures saturation S first (64 streams, window 8),
# then sends FRACTION x S images/s on a fixed schedule (64 streams) for
# MINUTES, and reports errors, throughput and latency per minute, and the
# server's RSS at the start and end of the soak. Results go in
# docs/reliability.md.
#
#   scripts/soak.sh [MINUTES] [FRACTION]     default 10 0.8
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
MINUTES="${1:-10}"
FRACTION="${2:-0.8}"
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server -p mnist-client

describe_machine
start_server "$OUT"
rss_sampler "$SERVER_PID" "$OUT/rss.tsv" &
trap 'stop_server' EXIT
client() { target/release/mnist-client --server "http://$ADDR" "$@"; }

echo "== saturation" >&2
client bench --concurrency 64 --window 8 --duration 10 --warmup 2000 --format json >"$OUT/saturation.json"
RATE=$(python3 -c "import json; print(round(json.load(open('$OUT/saturation.json'))['throughput'] * $FRACTION))")
echo "== soak: $RATE images/s for $MINUTES min" >&2
date +%s.%N >"$OUT/soak-start"
client bench --concurrency 64 --window 8 --rate "$RATE" --duration "$((MINUTES * 60))" --interval 60 --warmup 0 \
  --format json >"$OUT/soak.json"
date +%s.%N >"$OUT/soak-end"

python3 - "$OUT" "$FRACTION" <<'PY'
import json, sys, pathlib
out, fraction = pathlib.Path(sys.argv[1]), float(sys.argv[2])
sat = json.load(open(out / "saturation.json"))
soak = json.load(open(out / "soak.json"))
start, end = float(open(out / "soak-start").read()), float(open(out / "soak-end").read())
rss = [(float(t), int(kb) / 1024) for t, kb, _ in (l.split() for l in open(out / "rss.tsv"))]
during = [m for t, m in rss if start <= t <= end]
first = next(m for t, m in rss if t >= start)
last = [m for t, m in rss if t <= end][-1]
print(f"saturation {sat['throughput']:,.0f} images/s; soak target {fraction:.0%} of it")
print(f"soak: {soak['ok']:,} images in {soak['seconds']:.0f} s = {soak['throughput']:,.0f} images/s; "
      f"errors: {soak['errors'] or 'none'}; latency ms p50 {soak['latency_ms']['p50']:.2f} "
      f"p99 {soak['latency_ms']['p99']:.2f} max {soak['latency_ms']['max']:.1f}")
print(f"server RSS MiB: start {first:.1f}, end {last:.1f}, max {max(during):.1f}")
print()
print("| minute | images/s | errors | p50 ms | p99 ms |")
print("|---|---|---|---|---|")
for i in soak["timeline"]:
    if i["start_s"] + 60 > soak["seconds"] + 1:
        continue  # the last few answers after the final full minute
    print(f"| {i['start_s'] / 60:.0f} | {i['throughput']:,.0f} | {i['errors']} | {i['p50_ms']:.2f} | {i['p99_ms']:.2f} |")
PY
