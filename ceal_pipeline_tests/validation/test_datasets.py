"""Specification of the dataset loaders: upstream layouts in, uint8 arrays out,
a clear error with no data."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ceal_pipeline.validation import datasets
from ceal_pipeline.validation.datasets import (
    CIFAR10_CLASSES,
    DatasetNotFoundError,
    datasets_root,
    load_cifar10,
    load_mnist,
    read_idx,
)
from ceal_pipeline_tests.validation.conftest import learnable_digits, write_cifar_batches, write_idx

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def test_mnist_loader_reads_the_idx_layout_torchvision_uses(tiny_mnist_root):
    data = load_mnist(tiny_mnist_root)
    images, labels = learnable_digits(1200, seed=1)
    assert data.train_images.shape == (1200, 28, 28, 1) and data.train_images.dtype == np.uint8
    np.testing.assert_array_equal(data.train_images[..., 0], images)
    np.testing.assert_array_equal(data.train_labels, labels.astype(np.int64))
    assert data.test_images.shape == (300, 28, 28, 1)
    assert data.class_names == tuple("0123456789")


def test_read_idx_rejects_a_file_that_is_not_idx(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x89PNG not an idx file")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(path)


def test_read_idx_names_a_truncated_file(tmp_path):
    path = tmp_path / "labels.gz"
    write_idx(path, np.zeros(10, dtype=np.uint8))
    raw = tmp_path / "labels"
    raw.write_bytes(bytes([0, 0, 8, 1]) + (20).to_bytes(4, "big") + bytes(10))
    assert read_idx(path).shape == (10,)
    with pytest.raises(ValueError, match="header says"):
        read_idx(raw)


def test_cifar10_loader_reads_the_original_python_batches(tmp_path):
    expected = write_cifar_batches(tmp_path / "cifar-10-batches-py", per_batch=4)
    data = load_cifar10(tmp_path)
    assert data.train_images.shape == (20, 32, 32, 3) and data.test_images.shape == (4, 32, 32, 3)
    # Channel planes must come back as the last axis, pixel for pixel.
    np.testing.assert_array_equal(data.train_images, expected["train"])
    np.testing.assert_array_equal(data.test_images, expected["test"])
    np.testing.assert_array_equal(data.train_labels[:4], [0, 1, 2, 3])
    assert data.class_names == CIFAR10_CLASSES


def _write_image_folder(folder: Path) -> dict[tuple[str, str], np.ndarray]:
    from PIL import Image

    rng = np.random.default_rng(3)
    written = {}
    for split, per_class in (("train", 2), ("test", 1)):
        for cls in CIFAR10_CLASSES[:3]:
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                path = folder / split / cls / f"{i:04d}.png"  # PNG: lossless, so pixels can be compared
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
                written[(split, f"{cls}/{i}")] = pixels
    return written


def test_cifar10_loader_reads_an_image_folder_and_the_same_folder_as_a_tarball(tmp_path):
    written = _write_image_folder(tmp_path / "folder" / "cifar10")
    from_folder = load_cifar10(tmp_path / "folder", cache_dir=tmp_path / "cache")
    tar_root = tmp_path / "tar"
    tar_root.mkdir()
    with tarfile.open(tar_root / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(tmp_path / "folder" / "cifar10" / split, arcname=split)
    from_tar = load_cifar10(tar_root, cache_dir=tmp_path / "cache")

    assert from_folder.train_images.shape == (6, 32, 32, 3) and from_folder.test_images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(from_folder.train_labels, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(from_folder.train_images[2], written[("train", "automobile/0")])
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(from_tar, name), getattr(from_folder, name))


def test_decoded_image_folders_are_cached_as_npy_and_reread(tmp_path, monkeypatch):
    _write_image_folder(tmp_path / "cifar10")
    first = load_cifar10(tmp_path, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("cifar10-*/*.npy"))) == 4

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached dataset must not be decoded again")

    monkeypatch.setattr(datasets, "_read_image_folder", no_decoding)
    second = load_cifar10(tmp_path, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(second.train_images, first.train_images)


@pytest.mark.parametrize("loader, name", [(load_mnist, "MNIST"), (load_cifar10, "CIFAR-10")])
def test_missing_data_gives_an_error_that_says_how_to_get_it(tmp_path, loader, name):
    with pytest.raises(DatasetNotFoundError) as error:
        loader(tmp_path)
    message = str(error.value)
    assert f"{name} not found under {tmp_path}" in message
    assert "CEAL_DATASETS" in message and "--download" in message


def test_mnist_download_fetches_and_md5_checks_the_upstream_files(tmp_path, tiny_mnist_root, monkeypatch):
    mirror = tiny_mnist_root / "mnist" / "MNIST" / "raw"
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in mirror.iterdir()}
    monkeypatch.setattr(datasets, "MNIST_URL", mirror.as_uri() + "/")
    monkeypatch.setattr(datasets, "MNIST_MD5", md5)
    data = load_mnist(tmp_path / "fresh", download=True)
    assert data.train_images.shape == (1200, 28, 28, 1)
    assert (tmp_path / "fresh" / "mnist" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file()

    monkeypatch.setattr(datasets, "MNIST_MD5", {name: "0" * 32 for name in md5})
    with pytest.raises(ValueError, match="corrupt"):
        load_mnist(tmp_path / "other", download=True)


def test_data_folder_comes_from_ceal_datasets_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("CEAL_DATASETS", str(tmp_path))
    assert datasets_root() == tmp_path
    monkeypatch.delenv("CEAL_DATASETS")
    assert datasets_root() in (SHARED, Path.home() / ".ceal" / "datasets")


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="../shared/datasets/mnist is not on this machine")
def test_shared_mnist_is_the_full_dataset():
    data = load_mnist(SHARED)
    assert data.train_images.shape == (60000, 28, 28, 1) and data.test_images.shape == (10000, 28, 28, 1)
    assert np.bincount(data.train_labels).min() > 5000
