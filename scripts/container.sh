#!/usr/bin/env bash
# Builds, runs and checks the container image (Containerfile).
#
#   scripts/container.sh build            build localhost/mnist-server:VERSION (and :latest)
#   scripts/container.sh run [FLAGS...]   run it, ports published on 127.0.0.1 (gRPC 50051,
#                                         HTTP 8000, metrics 9464); FLAGS go to mnist-server
#   scripts/container.sh test             build, start, wait for health SERVING, run
#                                         mnist-client predict and eval against it, check that
#                                         every shipped model is served (info, eval by name),
#                                         SIGTERM, check exit code 0; prints size and start-up time
#
# Uses podman, else docker ($MNIST_CONTAINER_ENGINE to choose). With a registry
# at hand this is the plain `build` and `run`. On machines without one, a base
# image that is not present and cannot be pulled is made here:
#   - BASE_IMAGE (default docker.io/library/debian:bookworm-slim) from
#     `debootstrap --variant=minbase bookworm` ($DEBIAN_MIRROR, default the one
#     apt uses), imported as localhost/debian:bookworm-min;
#   - BUILDER_IMAGE (default docker.io/library/rust:1.95-slim-bookworm) from that
#     root filesystem plus this machine's Rust toolchain (`rustc --print sysroot`),
#     as localhost/rust:1.95-bookworm.
# Behind a TLS-inspecting proxy, MNIST_BUILD_CA (else SSL_CERT_FILE) names the CA
# bundle that pip and cargo inside the build must trust (a build secret, not
# kept in the image).
# MNIST_OCI_RUNTIME=/path/to/runtime (or --oci-runtime PATH before the command)
# runs containers with another OCI runtime, e.g. ../shared/tools/podman/runc on
# machines whose root lacks CAP_SYS_RESOURCE. Builds use --isolation chroot
# with podman when MNIST_OCI_RUNTIME is set (the default isolation needs rlimits too).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ "${1:-}" == "--oci-runtime" ]]; then
  MNIST_OCI_RUNTIME="$2"
  shift 2
fi
COMMAND="${1:-}"
shift || true

ENGINE="${MNIST_CONTAINER_ENGINE:-$(command -v podman || command -v docker || true)}"
[[ -n "$ENGINE" ]] || { echo "container.sh: neither podman nor docker found" >&2; exit 2; }
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
IMAGE="${MNIST_IMAGE:-localhost/mnist-server}"
BASE_IMAGE="${BASE_IMAGE:-docker.io/library/debian:bookworm-slim}"
BUILDER_IMAGE="${BUILDER_IMAGE:-docker.io/library/rust:1.95-slim-bookworm}"
LOCAL_BASE=localhost/debian:bookworm-min
LOCAL_BUILDER=localhost/rust:1.95-bookworm
WORK="${MNIST_CONTAINER_WORK:-/var/tmp/mnist-container}"

log() { printf 'container: %s\n' "$*" >&2; }

engine() {  # the engine, with the OCI runtime when one is set
  if [[ -n "${MNIST_OCI_RUNTIME:-}" ]]; then
    "$ENGINE" --runtime "$(cd "$(dirname "$MNIST_OCI_RUNTIME")" && pwd)/$(basename "$MNIST_OCI_RUNTIME")" "$@"
  else
    "$ENGINE" "$@"
  fi
}

have_image() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

# usable IMAGE: present, or pulled now.
usable() {
  have_image "$1" && return 0
  log "pulling $1"
  timeout 120 "$ENGINE" pull -q "$1" >/dev/null 2>&1
}

debian_rootfs() {
  local rootfs="$WORK/bookworm"
  if [[ ! -x "$rootfs/bin/sh" ]]; then
    command -v debootstrap >/dev/null || { echo "container.sh: no registry and no debootstrap (apt-get install debootstrap)" >&2; exit 2; }
    local mirror="${DEBIAN_MIRROR:-$(grep -rhE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
      | grep -oE 'https?://[^ ]+' | grep -E '/debian/?$' | head -1)}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    log "making a Debian bookworm root filesystem with debootstrap from $mirror"
    rm -rf "$rootfs" && mkdir -p "$rootfs"
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >&2; then
      rm -rf "$rootfs"
      echo "container.sh: debootstrap from $mirror failed (set DEBIAN_MIRROR)" >&2
      exit 1
    fi
  fi
  echo "$rootfs"
}

ensure_base_images() {
  if ! usable "$BASE_IMAGE"; then
    if ! have_image "$LOCAL_BASE"; then
      local rootfs
      rootfs="$(debian_rootfs)" || exit 1
      log "importing $LOCAL_BASE"
      tar -C "$rootfs" -c . | "$ENGINE" import -q - "$LOCAL_BASE" >/dev/null
    fi
    BASE_IMAGE="$LOCAL_BASE"
  fi
  if ! usable "$BUILDER_IMAGE"; then
    if ! have_image "$LOCAL_BUILDER"; then
      local rootfs sysroot
      rootfs="$(debian_rootfs)" || exit 1
      sysroot="$(rustc --print sysroot)"
      log "importing $LOCAL_BUILDER: Debian bookworm and the Rust toolchain of $sysroot"
      # The toolchain goes in as /usr/local/rust (documentation left out).
      tar -C "$rootfs" -cf "$WORK/builder.tar" .
      tar -C "$sysroot" --exclude=./share/doc --transform 's,^\.,./usr/local/rust,' -rf "$WORK/builder.tar" .
      "$ENGINE" import -q \
        --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' \
        "$WORK/builder.tar" "$LOCAL_BUILDER" >/dev/null
      rm -f "$WORK/builder.tar"
    fi
    BUILDER_IMAGE="$LOCAL_BUILDER"
  fi
}

build() {
  mkdir -p "$WORK"
  ensure_base_images
  local isolation=()
  [[ -n "${MNIST_OCI_RUNTIME:-}" && "$(basename "$ENGINE")" == podman ]] && isolation=(--isolation chroot)
  local secrets=()
  local ca="${MNIST_BUILD_CA:-${SSL_CERT_FILE:-}}"
  [[ -n "$ca" && -f "$ca" ]] && secrets=(--secret "id=ca_bundle,src=$ca")
  local sha
  sha="$(python3 -c 'import json; print(json.load(open("models/mnist.json"))["sha256"])')"
  log "building $IMAGE:$VERSION (builder $BUILDER_IMAGE, base $BASE_IMAGE)"
  local started=$SECONDS
  engine build "${isolation[@]}" "${secrets[@]}" -f Containerfile \
    --build-arg "BUILDER_IMAGE=$BUILDER_IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "VERSION=$VERSION" --build-arg "MODEL_SHA256=$sha" \
    -t "$IMAGE:$VERSION" -t "$IMAGE:latest" .
  log "built $IMAGE:$VERSION in $((SECONDS - started)) s; size $("$ENGINE" image inspect "$IMAGE:$VERSION" --format '{{.Size}}' | awk '{printf "%.1f MB", $1 / 1e6}')"
}

run() {
  engine run --rm -p 127.0.0.1:50051:50051 -p 127.0.0.1:8000:8000 -p 127.0.0.1:9464:9464 "$IMAGE:$VERSION" "$@"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

test_image() {
  build
  cargo build --release -q -p mnist-client
  local grpc http metrics
  CONTAINER_NAME="mnist-test-$$"
  local name="$CONTAINER_NAME"
  grpc=$(free_port); http=$(free_port); metrics=$(free_port)
  local started
  started=$(date +%s.%N)
  engine run -d --name "$name" -p "127.0.0.1:$grpc:50051" -p "127.0.0.1:$http:8000" -p "127.0.0.1:$metrics:9464" \
    "$IMAGE:$VERSION" >/dev/null
  trap 'engine rm -f "$CONTAINER_NAME" >/dev/null 2>&1 || true' EXIT
  local client=(target/release/mnist-client --server "http://127.0.0.1:$grpc")
  for _ in $(seq 300); do
    if "${client[@]}" health >/dev/null 2>&1; then break; fi
    sleep 0.05
  done
  "${client[@]}" health
  local ready
  ready=$(python3 -c "print(f'{$(date +%s.%N) - $started:.2f}')")
  log "SERVING ${ready} s after \`run\` (container start, model load, warm-up)"
  "${client[@]}" predict examples/digits
  "${client[@]}" eval --data-dir "${MNIST_DIR:-$ROOT/../shared/data/mnist}" --limit 2000
  # Every shipped model is served, each by its name.
  local served expected
  served=$("${client[@]}" info --format json | python3 -c 'import json, sys; print(" ".join(sorted(m["name"] for m in json.load(sys.stdin))))')
  expected=$(cd models && ls -1 -- *.onnx | sed 's/\.onnx$//' | sort | xargs)
  [[ "$served" == "$expected" ]] || { echo "container.sh: the image serves '$served', not every shipped model ('$expected')" >&2; exit 1; }
  log "serves every shipped model: $served"
  "${client[@]}" --model mnist-three-block-int8 eval --data-dir "${MNIST_DIR:-$ROOT/../shared/data/mnist}" --limit 2000
  curl -sf "http://127.0.0.1:$http/v2/health/ready" >/dev/null && log "HTTP port ready"
  curl -sf "http://127.0.0.1:$metrics/metrics" | grep -q mnist_requests_total && log "metrics served"
  log "runs as user $("$ENGINE" image inspect "$IMAGE:$VERSION" --format '{{.Config.User}}')"
  local stop_started=$SECONDS
  engine stop -t 30 "$name" >/dev/null
  local code
  code=$("$ENGINE" inspect "$name" --format '{{.State.ExitCode}}')
  log "stopped with exit code $code in $((SECONDS - stop_started)) s"
  engine logs "$name" 2>&1 | tail -3 >&2
  [[ "$code" == 0 ]] || { echo "container.sh: the server exited $code after SIGTERM" >&2; exit 1; }
  log "size $("$ENGINE" image inspect "$IMAGE:$VERSION" --format '{{.Size}}' | awk '{printf "%.1f MB", $1 / 1e6}')"
  log "test passed"
}

case "$COMMAND" in
  build) build ;;
  run) run "$@" ;;
  test) test_image ;;
  *) echo "usage: scripts/container.sh [--oci-runtime PATH] build|run|test" >&2; exit 2 ;;
esac
