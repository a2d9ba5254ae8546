"""ONNX Runtime's own static quantizer beside `mnist-train --int8`, same run.

Quantizes the float model with `onnxruntime.quantization.quantize_static`
(QDQ, per-channel int8 weights, uint8 activations, MinMax on the same first
N training images `mnist-train` calibrates on), then scores the float model,
our int8 model and ORT's on the 10,000 test images and times all three at
batch 1 and 64 on one thread each, in rotating order over 3 rounds.

    python3 -m venv /tmp/ortq && /tmp/ortq/bin/pip install onnxruntime==1.31.1 onnx numpy
    /tmp/ortq/bin/python scripts/ort-quantizer.py [MNIST_DIR] [CALIBRATION_IMAGES]

A benchmark aid, not part of the pipeline: mnist-train writes the shipped
int8 model without Python.
"""

import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_idx import find, idx, normalize  # noqa: E402

class Reader(CalibrationDataReader):
    def __init__(self, images, batch=256):
        self.batches = iter([{"input": normalize(images[i : i + batch])} for i in range(0, len(images), batch)])

    def get_next(self):
        return next(self.batches, None)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def predict(s, images):
    return np.concatenate([s.run(["logits"], {"input": normalize(images[i : i + 1000])})[0] for i in range(0, len(images), 1000)]).argmax(1)


def rate(s, images, batch, seconds=2.0):
    x = normalize(images[:batch])
    for _ in range(3):
        s.run(["logits"], {"input": x})
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        s.run(["logits"], {"input": x})
        n += 1
    return n * batch / (time.perf_counter() - start)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MNIST_DIR", "../shared/data/mnist")
    calibration = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    train = idx(find(directory, "train-images-idx3-ubyte"))
    test, labels = idx(find(directory, "t10k-images-idx3-ubyte")), idx(find(directory, "t10k-labels-idx1-ubyte"))
    ours = "models/mnist-int8.onnx"
    theirs = os.path.join(tempfile.mkdtemp(), "mnist-int8-ort.onnx")
    quantize_static(
        "models/mnist.onnx", theirs, Reader(train[:calibration]), quant_format=QuantFormat.QDQ,
        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )
    sessions = {"float (mnist.onnx)": session("models/mnist.onnx"), "mnist-train --int8": session(ours),
                "ORT quantize_static": session(theirs)}
    float_digits = predict(sessions["float (mnist.onnx)"], test)
    # Timed in 3 rounds, the order rotated each round, medians reported: the
    # first model timed in a sitting is otherwise slower for reasons of its own.
    names = list(sessions)
    rates = {name: {1: [], 64: []} for name in names}
    for round_ in range(3):
        for name in names[round_:] + names[:round_]:
            for batch in (1, 64):
                rates[name][batch].append(rate(sessions[name], test, batch, seconds=1.5))
    median = lambda xs: sorted(xs)[len(xs) // 2]
    print(f"calibration: first {calibration} training images; 1 intra-op thread each; "
          "images/s are medians of 3 rounds\n")
    print("| model | test accuracy | same digit as float | images/s batch 1 | images/s batch 64 |")
    print("|---|---:|---:|---:|---:|")
    for name, s in sessions.items():
        digits = predict(s, test)
        print(f"| {name} | {(digits == labels).mean() * 100:.2f}% | {(digits == float_digits).mean() * 100:.2f}% | "
              f"{median(rates[name][1]):,.0f} | {median(rates[name][64]):,.0f} |")

if __name__ == "__main__":
    main()
