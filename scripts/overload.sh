#!/usr/bin/env bash
# Overload: far more concurrent streams than the machine can serve, then
# back to normal load. Measures, in one run against one server process:
#   baseline   saturation throughput S (64 streams, window 8)
#   overload   STREAMS streams (default 2,000) on 8 connections, window 32:
#              throughput of admitted images vs S, refusals by status code,
#              server RSS (peak vs idle)
#   recovery   the baseline load again, second by second, right after
#   unary      PredictOne saturation U (256 callers), for the unary phase
#   unary-10x  PredictOne offered at 10 x U by 8,192 callers (enough that
#              the offered rate does not wait for answers): admitted
#              throughput vs U, refusals (RESOURCE_EXHAUSTED), RSS
# Results go in docs/reliability.md.
#
#   scripts/overload.sh [STREAMS] [SECONDS_PER_PHASE]     default 2000 20
#   SERVER_FLAGS="--intra-threads 1" scripts/overload.sh  extra mnist-server flags
#
# Server and load generator share this machine's cores, as in
# bench-server.sh; compare the phases as ratios within one run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$(dirname "${BASH_SOURCE[0]}")/server-env.sh"
STREAMS="${1:-2000}"
PHASE_SECONDS="${2:-20}"
OUT="$(mktemp -d)"
cargo build --release -q -p mnist-server -p mnist-client
# 2,000 streams on 8 connections plus the server's side of them.
ulimit -n 65536 2>/dev/null || true

describe_machine
echo "== server: default limits (--max-streams 1024, --max-queue-size 4096, --max-in-flight-per-stream 256) ${SERVER_FLAGS:-}" >&2
# shellcheck disable=SC2086 # SERVER_FLAGS is a list of flags
start_server "$OUT" ${SERVER_FLAGS:-}
rss_sampler "$SERVER_PID" "$OUT/rss.tsv" &
SAMPLER_PID=$!
trap 'kill $SAMPLER_PID 2>/dev/null || true; stop_server' EXIT

phase() {  # name, then mnist-client bench flags
  local name="$1"; shift
  echo "== $name" >&2
  echo -e "$(date +%s.%N)\tstart\t$name" >>"$OUT/phases.tsv"
  target/release/mnist-client --server "http://$ADDR" bench --duration "$PHASE_SECONDS" --format json "$@" \
    >"$OUT/$name.json"
  echo -e "$(date +%s.%N)\tend\t$name" >>"$OUT/phases.tsv"
}

sleep 2   # idle RSS after warm-up
phase baseline --concurrency 64 --window 8 --warmup 2000
phase overload --concurrency "$STREAMS" --connections 8 --window 32 --warmup 0
phase recovery --concurrency 64 --window 8 --warmup 0
phase unary --mode unary --concurrency 256 --connections 8 --warmup 2000
RATE=$(python3 -c "import json; print(round(json.load(open('$OUT/unary.json'))['throughput'] * 10))")
phase unary-10x --mode unary --concurrency 8192 --connections 8 --rate "$RATE" --warmup 0
sleep 2

python3 - "$OUT" "$STREAMS" <<'PY'
import json, sys, pathlib
out, streams = pathlib.Path(sys.argv[1]), int(sys.argv[2])
names = ("baseline", "overload", "recovery", "unary", "unary-10x")
r = {n: json.load(open(out / f"{n}.json")) for n in names}
phases = {}
for line in open(out / "phases.tsv"):
    t, edge, name = line.split("\t")
    phases.setdefault(name.strip(), {})[edge] = float(t)
rows = [l.split() for l in open(out / "rss.tsv")]
rss = [(float(t), int(kb)) for t, kb, _ in rows]
cpu = [(float(t), float(c)) for t, _, c in rows]
def rss_in(name):
    p = phases[name]
    values = [kb for t, kb in rss if p["start"] <= t <= p["end"]]
    return max(values) / 1024 if values else float("nan")
def cpu_us_per_image(name):
    """The server's CPU time (all threads) per answered image in the phase."""
    p = phases[name]
    inside = [c for t, c in cpu if p["start"] <= t <= p["end"]]
    if len(inside) < 2 or not r[name]["ok"]:
        return float("nan")
    seconds = (inside[-1] - inside[0]) * r[name]["seconds"] / max(p["end"] - p["start"], 1e-9)
    return seconds / r[name]["ok"] * 1e6
idle = rss[0][1] / 1024
after = rss[-1][1] / 1024
S = r["baseline"]["throughput"]
U = r["unary"]["throughput"]
reference = {"baseline": S, "overload": S, "recovery": S, "unary": U, "unary-10x": U}
def errors(name):
    e = r[name]["errors"]
    return ", ".join(f"{k} {v:,}" for k, v in sorted(e.items())) or "none"
print(f"| phase | load | images/s OK | vs its baseline | p50 ms | p99 ms | errors | server RSS peak MiB | server CPU us/image |")
print(f"|---|---|---|---|---|---|---|---|---|")
loads = {"baseline": "64 streams, window 8", "overload": f"{streams:,} streams / 8 connections, window 32",
         "recovery": "64 streams, window 8", "unary": "PredictOne, 256 callers",
         "unary-10x": f"PredictOne offered at {10 * U:,.0f}/s by 8,192 callers"}
for name in names:
    x = r[name]
    print(f"| {name} | {loads[name]} | {x['throughput']:,.0f} | {x['throughput'] / reference[name]:.2f} | "
          f"{x['latency_ms']['p50']:.2f} | {x['latency_ms']['p99']:.2f} | {errors(name)} | {rss_in(name):.0f} | "
          f"{cpu_us_per_image(name):.0f} |")
first = r["recovery"]["timeline"][0]["throughput"] if r["recovery"]["timeline"] else 0
print()
print(f"server RSS: idle {idle:.0f} MiB, peak {max(kb for _, kb in rss) / 1024:.0f} MiB, after {after:.0f} MiB; "
      f"recovery's first second: {first:,.0f} images/s ({first / S:.2f} of baseline)")
PY
