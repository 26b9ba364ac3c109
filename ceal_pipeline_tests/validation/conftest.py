"""Tiny synthetic datasets in the upstream layouts, so the loaders and the whole
benchmark run in seconds and without ../shared/datasets."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (the format MNIST ships in)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def learnable_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 images whose class is a bright 7x7 square at one of ten
    positions, plus noise: learnable by the CNN within an epoch or two."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 5)
        images[i, 3 + 12 * row: 10 + 12 * row, 1 + 5 * col: 6 + 5 * col] = 230
    return images, labels.astype(np.uint8)


@pytest.fixture
def tiny_mnist_root(tmp_path: Path) -> Path:
    """A data folder holding a 1,200 / 300 image MNIST look-alike in torchvision's layout."""
    root = tmp_path / "datasets"
    raw = root / "mnist" / "MNIST" / "raw"
    train_images, train_labels = learnable_digits(1200, seed=1)
    test_images, test_labels = learnable_digits(300, seed=2)
    write_idx(raw / "train-images-idx3-ubyte.gz", train_images)
    write_idx(raw / "train-labels-idx1-ubyte.gz", train_labels)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", test_images)
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", test_labels)
    return root


def write_cifar_batches(folder: Path, per_batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``cifar-10-batches-py`` with ``per_batch`` images per batch; return
    the images as (N, 32, 32, 3) for comparison."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = [int(v) for v in np.arange(per_batch) % 10]
        # The python batches store each image as its R plane, G plane, B plane.
        data = images.transpose(0, 3, 1, 2).reshape(per_batch, 3072)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
        expected["test" if name == "test_batch" else "train"].append(images)
    return {split: np.concatenate(parts) for split, parts in expected.items()}
