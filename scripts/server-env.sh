# Sourced by the load scripts (bench-server.sh, bench-ghz.sh, bench-oip.sh, overload.sh, soak.sh): the
# ONNX Runtime library, MNIST_DIR, and helpers that start the release server
# on a free port, stop it, and sample its memory.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh runtime
source scripts/env.sh
export MNIST_DIR="${MNIST_DIR:-$ROOT/../shared/data/mnist}"

# start_server LOG_DIR [mnist-server flags...]: sets SERVER_PID and ADDR once
# the server is ready (health SERVING). SERVER_LAUNCHER (an array, e.g.
# (taskset -c 0)) is put before the command when set.
start_server() {
  local dir="$1"; shift
  ${SERVER_LAUNCHER[@]+"${SERVER_LAUNCHER[@]}"} target/release/mnist-server --addr 127.0.0.1:0 --log-format json "$@" 2>"$dir/server.log" &
  SERVER_PID=$!
  for _ in $(seq 300); do
    if grep -q '"message":"ready' "$dir/server.log" 2>/dev/null; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$dir/server.log" >&2; return 1; fi
    sleep 0.1
  done
  ADDR=$(python3 -c "import json
for l in open('$dir/server.log'):
    f=json.loads(l).get('fields',{})
    if f.get('message')=='listening': print(f['addr'])")
}

# stop_server: SIGTERM, then wait for the drain.
stop_server() {
  if [[ -n "${SERVER_PID:-}" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
  fi
}

# rss_sampler PID FILE: appends "unix_time rss_kib cpu_seconds" every 0.5 s
# while PID lives (cpu_seconds: the process's user + system time so far).
rss_sampler() {
  local ticks
  ticks=$(getconf CLK_TCK)
  while kill -0 "$1" 2>/dev/null; do
    local kib cpu
    kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null) || break
    cpu=$(awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null) || break
    [[ -n "$kib" ]] && echo -e "$(date +%s.%N)\t$kib\t$cpu" >>"$2"
    sleep 0.5
  done
}

# require_ghz SCRIPT: sets GHZ ($GHZ, else ../shared/tools/ghz) or exits saying where it was looked for.
require_ghz() {
  GHZ="${GHZ:-$ROOT/../shared/tools/ghz}"
  if [[ ! -x "$GHZ" ]]; then
    echo "$1: ghz not found at $GHZ (set GHZ=/path/to/ghz)" >&2
    exit 2
  fi
}
