# Sourced by the benchmarks that run the reference PyTorch script: sets up
# the venv, MNIST_DIR, REFERENCE and a WORK directory holding the raw IDX
# files where torchvision looks for them ($WORK/MNIST/raw).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh "$@" reference
source scripts/env.sh
export MNIST_DIR="${MNIST_DIR:-$ROOT/../shared/data/mnist}"
REFERENCE="${REFERENCE:-$ROOT/../shared/peers/seed_pytorch.py}"
WORK="$(mktemp -d)"
mkdir -p "$WORK/MNIST/raw"
for f in "$MNIST_DIR"/*.gz; do gunzip -c "$f" > "$WORK/MNIST/raw/$(basename "$f" .gz)"; done
