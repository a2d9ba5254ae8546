#!/usr/bin/env bash
# Runs mnist-server with the shipped model (models/mnist.onnx) on
# 127.0.0.1:50051. Installs ONNX Runtime into .venv on first use (PyPI's
# onnxruntime wheel), builds in release mode, and passes every argument on:
#   scripts/serve.sh --addr 0.0.0.0:50051 --metrics-addr 0.0.0.0:9464
# The Open Inference Protocol (KServe v2 / Triton) is always served on the
# gRPC port; its REST API is off unless given an address:
#   scripts/serve.sh --http-addr 127.0.0.1:8000     # curl 127.0.0.1:8000/v2/models/mnist
# The int8 model (same accuracy, faster on CPUs):
#   scripts/serve.sh --model models/mnist-int8.onnx
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh runtime
source scripts/env.sh
exec cargo run --release -p mnist-server -- "$@"
