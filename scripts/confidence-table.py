"""What `mnist-client predict --min-confidence` does on the 10,000 MNIST test
images with a given model: how many predictions each threshold flags as
uncertain, how many of the model's errors it catches, and how accurate the
predictions it lets through are (README, docs/training.md).

    .venv/bin/python scripts/confidence-table.py [MODEL] [MNIST_DIR]   default models/mnist.onnx
"""

import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_idx import find, idx, normalize  # noqa: E402


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else "models/mnist.onnx"
    directory = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("MNIST_DIR", "../shared/data/mnist")
    images = idx(find(directory, "t10k-images-idx3-ubyte"))
    labels = idx(find(directory, "t10k-labels-idx1-ubyte"))
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    logits = np.concatenate(
        [session.run(["logits"], {"input": normalize(images[i : i + 1000])})[0] for i in range(0, len(images), 1000)]
    ).astype(np.float64)
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    confidence, predicted = probabilities.max(1), probabilities.argmax(1)
    wrong = predicted != labels
    print(f"{model}: {wrong.sum()} errors in {len(labels)} test images\n")
    print("| --min-confidence | flagged uncertain | errors among them | errors let through | accuracy of the rest |")
    print("|---:|---:|---:|---:|---:|")
    for threshold in [0.5, 0.8, 0.9, 0.95, 0.99, 0.999]:
        kept = confidence >= threshold
        rest = f"{(~wrong[kept]).mean() * 100:.2f}%" if kept.any() else "(none left)"
        print(f"| {threshold} | {(~kept).sum()} ({(~kept).mean() * 100:.2f}%) | {(wrong & ~kept).sum()} "
              f"| {(wrong & kept).sum()} | {rest} |")


if __name__ == "__main__":
    main()
