#!/usr/bin/env bash
# The project's test command (README, CI): installs what the tests need,
# then runs formatting and lint checks, every crate's tests (training
# included) and the interoperability tests with clients written by others:
# grpcio, grpcurl and ghz (mnist.v1), tritonclient, KServe's SDK and curl
# (the Open Inference Protocol); the web page in headless Chromium; and the
# deployment manifests, offline.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-train skip the libtorch crate (no 4.7 GB download)
#
# MNIST is read from $MNIST_DIR, else ../shared/data/mnist, else data/mnist
# (downloaded there if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

with_train=1
[[ "${1:-}" == "--no-train" ]] && with_train=0

step() { printf '\n==> %s\n' "$*" >&2; }

step "setup"
if [[ $with_train == 1 ]]; then scripts/setup.sh runtime test oip browser render torch; else scripts/setup.sh runtime test oip browser render; fi
source scripts/env.sh
if [[ -z "${MNIST_DIR:-}" ]]; then
  if [[ -d "$ROOT/../shared/data/mnist" ]]; then MNIST_DIR="$ROOT/../shared/data/mnist"; else MNIST_DIR="$ROOT/data/mnist"; fi
fi
export MNIST_DIR
if ! ls "$MNIST_DIR"/t10k-images-idx3-ubyte* >/dev/null 2>&1; then
  step "downloading MNIST into $MNIST_DIR"
  cargo run -q --example fetch_mnist --features download -- "$MNIST_DIR"
fi

packages=(--workspace)
[[ $with_train == 1 ]] || packages=(--workspace --exclude mnist-train)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy "${packages[@]}" --all-targets -- -D warnings

step "cargo test"
# One build for everything: training time is spent inside libtorch, and
# dependencies are optimized in the test profile (Cargo.toml), so the
# training tests need no separate release build.
cargo test "${packages[@]}"

step "interoperability: grpcio, grpcurl and ghz"
cargo build -q -p mnist-server --bin mnist-server --example dev_certs
cargo build -q -p mnist-client --bin mnist-client
export MNIST_SERVER_BIN="$ROOT/target/debug/mnist-server" MNIST_DEV_CERTS_BIN="$ROOT/target/debug/examples/dev_certs"
export MNIST_CLIENT_BIN="$ROOT/target/debug/mnist-client"
export GRPCURL="${MNIST_VENV:-$ROOT/.venv}/bin/grpcurl"
python "$ROOT/tests/interop/test_interop.py"

step "photos the project did not draw: the second renderer, through client and server"
python "$ROOT/tests/interop/test_second_renderer.py"

step "the web page in a real browser (Chromium through Selenium)"
python "$ROOT/tests/interop/test_web.py"

step "deployment: manifests against the Kubernetes schemas and the server's flags"
python "$ROOT/tests/deploy/test_manifests.py"

step "interoperability: the Open Inference Protocol (tritonclient, KServe, curl, grpcurl, ghz)"
# tritonclient and KServe pin other protobuf versions: their own virtualenv.
"${MNIST_OIP_VENV:-$ROOT/.venv-oip}/bin/python" "$ROOT/tests/interop/test_oip.py"
