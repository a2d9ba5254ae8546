# Source this file: points the build and the binaries at the project venv's
# libtorch and ONNX Runtime (see scripts/setup.sh).
_mnist_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_mnist_venv="${MNIST_VENV:-$_mnist_root/.venv}"
if [ -z "${LIBTORCH:-}" ] && [ -x "$_mnist_venv/bin/python" ]; then
  export LIBTORCH_USE_PYTORCH=1
  export PATH="$_mnist_venv/bin:$PATH"
fi
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  for _lib in "$_mnist_venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* \
              "$_mnist_venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.*.dylib; do
    if [ -f "$_lib" ]; then export ORT_DYLIB_PATH="$_lib"; break; fi
  done
fi
unset _mnist_root _mnist_venv _lib
