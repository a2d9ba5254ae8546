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

# describe_machine: the "== machine:" line (cores, CPU, date) every load
# script prints to stderr, so that its figures say where they were measured.
describe_machine() {
  echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)" >&2
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

# cores_layout SCRIPT: where the server and the load generators run, from
# CORES. shared (default): all of them on every core. split (2 cores or
# more): the server and the ceiling on core 0 with one ONNX Runtime thread
# (said explicitly), ghz (--cpus 1) and mnist-client on core 1, as when
# callers run on other hosts. Sets SERVER_LAUNCHER (read by start_server),
# LOAD (put before ghz and mnist-client), ONNX_THREADS (server and ceiling
# flags) and GHZ_CPUS (ghz flags).
cores_layout() {
  CORES="${CORES:-shared}"
  case "$CORES" in
    shared) SERVER_LAUNCHER=(); LOAD=(); ONNX_THREADS=(); GHZ_CPUS=() ;;
    split)
      (( $(nproc) >= 2 )) || { echo "$1: CORES=split needs 2 cores" >&2; exit 2; }
      SERVER_LAUNCHER=(taskset -c 0); LOAD=(taskset -c 1); ONNX_THREADS=(--intra-threads 1); GHZ_CPUS=(--cpus 1) ;;
    *) echo "$1: CORES is shared or split, not $CORES" >&2; exit 2 ;;
  esac
}

# write_stream_requests FILE IMAGES: the body of one ghz Predict call, a
# stream of IMAGES digits (the README's ten, repeated), each with its own id.
write_stream_requests() {
  python3 - "$1" "$2" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
ten = json.load(open("examples/requests/stream-ghz.json"))
json.dump([dict(m, id=str(i)) for i, m in enumerate((ten * (n // len(ten) + 1))[:n])], open(path, "w"))
PY
}
