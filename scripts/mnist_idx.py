"""MNIST's IDX files and the model's input normalization, for the Python
benchmark aids in scripts/ (the Rust crates have their own: src/dataset.rs)."""

import gzip
import os

import numpy as np

MEAN, STD = 0.1307, 0.3081


def idx(path):
    """The array in an IDX file (gzipped or raw)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(directory, name):
    """The path of NAME.gz or NAME in DIRECTORY."""
    for candidate in (name + ".gz", name):
        if os.path.exists(os.path.join(directory, candidate)):
            return os.path.join(directory, candidate)
    raise SystemExit(f"{name} not found in {directory}")


def normalize(images):
    """uint8 [N, 28, 28] -> the model's float32 [N, 1, 28, 28] input."""
    return ((images.astype(np.float32) / 255.0 - MEAN) / STD)[:, None, :, :]
