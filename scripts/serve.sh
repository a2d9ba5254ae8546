#!/usr/bin/env bash
# Runs mnist-server with every shipped model (models/*.onnx; `mnist`, the
# reference, answers requests that name no model) on 127.0.0.1:50051. Installs ONNX Runtime into .venv on first use (PyPI's
# onnxruntime wheel), builds in release mode, and passes every argument on:
#   scripts/serve.sh --addr 0.0.0.0:50051 --metrics-addr 0.0.0.0:9464
# The Open Inference Protocol (KServe v2 / Triton) is always served on the
# gRPC port; its REST API is off unless given an address:
#   scripts/serve.sh --http-addr 127.0.0.1:8000     # curl 127.0.0.1:8000/v2/models/mnist
# Only the int8 model (same accuracy, faster on CPUs), or a choice of models:
#   scripts/serve.sh --model models/mnist-int8.onnx
#   scripts/serve.sh --model models/mnist-int8.onnx --model ref=models/mnist.onnx
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh runtime
source scripts/env.sh
models=(--model-repository models --default-model mnist)
for arg in "$@"; do
  case "$arg" in
    --model | --model=* | --model-repository | --model-repository=*) models=() ;;
  esac
done
exec cargo run --release -p mnist-server -- "${models[@]}" "$@"
