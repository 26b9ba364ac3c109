"""Read MNIST and CIFAR-10 from a data folder into uint8 arrays (no torchvision).

The data folder is ``$CEAL_DATASETS``; without it, ``../shared/datasets`` next
to the repository when that exists (every machine of this project has it), else
``~/.ceal/datasets``. Layouts read, in this order:

- MNIST: the gzipped (or plain) IDX files that torchvision's ``MNIST(root)``
  reads, under ``<root>/mnist/MNIST/raw``, ``<root>/MNIST/raw``, ``<root>/mnist``
  or ``<root>`` itself.
- CIFAR-10: the original python batches ``cifar-10-batches-py/``; an
  ImageFolder of images ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` (in
  ``<root>/cifar10``, ``<root>/cifar10-jpeg`` or ``<root>``); or that ImageFolder
  as a tarball ``cifar10-jpeg.tar.gz``, read straight from the tar. Decoding 60k
  JPEGs costs tens of seconds, so decoded arrays are cached as ``.npy`` in a
  cache folder (the CLI and assets use ``$CEAL_HOME/cache/datasets``) keyed by
  the source's path, size and mtime.

Images come back as ``(N, H, W, C)`` uint8 and labels as ``(N,)`` int64.
``download=True`` fetches the upstream files (MD5-checked) for users with a
network; with no data and no download the error says where it looked and how
to get the data.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: CIFAR-10 class names in label order (the order of the python batches' meta,
#: which is also the alphabetical order of the ImageFolder class folders).
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: Upstream mirror used by torchvision, and MD5 of each gzipped file.
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DatasetNotFoundError(FileNotFoundError):
    """No readable copy of a dataset under the data folder."""


@dataclass(frozen=True)
class ImageClassificationData:
    """A train/test split of an image classification dataset.

    ``*_images`` are ``(N, H, W, C)`` uint8, ``*_labels`` ``(N,)`` int64 indices
    into ``class_names``; ``source`` is the file or folder that was read.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.ndim != 4 or images.dtype != np.uint8:
                raise ValueError(f"{self.name} {split} images must be (N, H, W, C) uint8, got {images.shape} {images.dtype}")
            if len(images) != len(labels):
                raise ValueError(f"{self.name} {split}: {len(images)} images but {len(labels)} labels ({self.source})")
            if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
                raise ValueError(f"{self.name} {split}: labels outside 0..{len(self.class_names) - 1} in {self.source}")


def datasets_root() -> Path:
    """The data folder: ``$CEAL_DATASETS``, else ``../shared/datasets`` beside the
    repository if present, else ``~/.ceal/datasets``."""
    if os.environ.get("CEAL_DATASETS"):
        return Path(os.environ["CEAL_DATASETS"]).expanduser()
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    if shared.is_dir():
        return shared
    return Path.home() / ".ceal" / "datasets"


def load_dataset(
    name: str, root: str | Path | None = None, *, download: bool = False, cache_dir: str | Path | None = None
) -> ImageClassificationData:
    """Load ``"mnist"`` or ``"cifar10"`` (see :func:`load_mnist`, :func:`load_cifar10`)."""
    if name == "mnist":
        return load_mnist(root, download=download)
    if name == "cifar10":
        return load_cifar10(root, download=download, cache_dir=cache_dir)
    raise ValueError(f"unknown dataset {name!r}; choose 'mnist' or 'cifar10'")


# --------------------------------------------------------------------- MNIST
def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped if the name ends in ``.gz``) into a uint8 array.

    The IDX header is two zero bytes, a type code (``0x08`` = unsigned byte, the
    only one MNIST uses), the number of dimensions, then each dimension as a
    big-endian int32.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read IDX file {path}: {exc}; delete it and download it again") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic {data[:4].hex()})")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise ValueError(f"{path}: header says {dims} = {expected} bytes but the file holds {len(data) - offset}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims).copy()


def _find_mnist_folder(root: Path) -> Path | None:
    for folder in (root / "mnist" / "MNIST" / "raw", root / "MNIST" / "raw", root / "mnist", root):
        if all(_idx_file(folder, stem) is not None for stem in MNIST_FILES.values()):
            return folder
    return None


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_mnist(root: str | Path | None = None, *, download: bool = False) -> ImageClassificationData:
    """Load MNIST (60k train, 10k test, 28x28x1 uint8) from IDX files under ``root``.

    With ``download=True`` and no copy found, the four files are fetched into
    ``<root>/mnist/MNIST/raw`` and MD5-checked.
    """
    root = Path(root) if root is not None else datasets_root()
    folder = _find_mnist_folder(root)
    if folder is None and download:
        folder = root / "mnist" / "MNIST" / "raw"
        for file_name, md5 in MNIST_MD5.items():
            _download(MNIST_URL + file_name, folder / file_name, md5)
    if folder is None:
        raise DatasetNotFoundError(
            f"MNIST not found under {root} (looked for {MNIST_FILES['train_images']}[.gz] and the other IDX files in "
            f"{root}/mnist/MNIST/raw, {root}/MNIST/raw, {root}/mnist and {root}). Set CEAL_DATASETS to the folder "
            "that holds them, or pass --download (download=True) to fetch them from the upstream mirror"
        )
    arrays = {key: read_idx(_idx_file(folder, stem)) for key, stem in MNIST_FILES.items()}
    return ImageClassificationData(
        name="mnist",
        train_images=arrays["train_images"][..., None],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"][..., None],
        test_labels=arrays["test_labels"].astype(np.int64),
        class_names=MNIST_CLASSES,
        source=str(folder),
    )


# ------------------------------------------------------------------ CIFAR-10
def load_cifar10(
    root: str | Path | None = None, *, download: bool = False, cache_dir: str | Path | None = None
) -> ImageClassificationData:
    """Load CIFAR-10 (50k train, 10k test, 32x32x3 uint8) from ``root``.

    Reads the python batches, an image folder or the JPEG tarball (module
    docstring); decoded image folders and tarballs are cached as ``.npy`` under
    ``cache_dir`` (no cache when None). ``download=True``
    fetches the python batches into ``root`` when no copy is found.
    """
    root = Path(root) if root is not None else datasets_root()
    for batches in (root / "cifar-10-batches-py", root / "cifar10" / "cifar-10-batches-py"):
        if (batches / "data_batch_1").is_file():
            return _load_cifar10_batches(batches)
    for folder in (root / "cifar10", root / "cifar10-jpeg", root):
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            return _cached(folder, cache_dir, lambda: _read_image_folder(folder))
    for tarball in (root / "cifar10-jpeg.tar.gz", root / "cifar10-jpeg.tar", root / "cifar10.tar.gz"):
        if tarball.is_file():
            return _cached(tarball, cache_dir, lambda: _read_image_tar(tarball))
    if download:
        archive = root / "cifar-10-python.tar.gz"
        _download(CIFAR10_URL, archive, CIFAR10_MD5)
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
        return _load_cifar10_batches(root / "cifar-10-batches-py")
    raise DatasetNotFoundError(
        f"CIFAR-10 not found under {root} (looked for cifar-10-batches-py/, an image folder cifar10/train/<class>/*.jpg "
        "and cifar10-jpeg.tar.gz). Set CEAL_DATASETS to the folder that holds one of them, or pass --download "
        f"(download=True) to fetch the python batches from {CIFAR10_URL}"
    )


def _load_cifar10_batches(folder: Path) -> ImageClassificationData:
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        path = folder / name
        if not path.is_file():
            raise DatasetNotFoundError(f"CIFAR-10 batch {path} is missing; re-extract cifar-10-python.tar.gz")
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{path} is not a CIFAR-10 python batch (missing key {exc})") from None
        # Rows are 3072 bytes: the red plane, then green, then blue, each 32x32 row-major.
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels

    train = [read(f"data_batch_{i}") for i in range(1, 6)]
    test_images, test_labels = read("test_batch")
    return ImageClassificationData(
        name="cifar10",
        train_images=np.ascontiguousarray(np.concatenate([b[0] for b in train])),
        train_labels=np.concatenate([b[1] for b in train]),
        test_images=np.ascontiguousarray(test_images),
        test_labels=test_labels,
        class_names=CIFAR10_CLASSES,
        source=str(folder),
    )


def _decode(data: bytes, where: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"cannot decode image {where}: {exc}; replace or delete the file") from exc


def _split_arrays(items: list[tuple[str, str, np.ndarray]], source: str) -> dict[str, np.ndarray]:
    """Stack ``(split, class_name, image)`` items into the four arrays, sorted by
    (class, file order) so the result does not depend on the archive's order."""
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        chosen = [(c, img) for s, c, img in items if s == split]
        unknown = sorted({c for c, _ in chosen} - set(CIFAR10_CLASSES))
        if unknown:
            raise ValueError(f"{source}: class folders {unknown} are not CIFAR-10 classes {list(CIFAR10_CLASSES)}")
        if not chosen:
            raise DatasetNotFoundError(f"{source} holds no {split}/<class>/*.jpg images")
        shapes = {img.shape for _, img in chosen}
        if len(shapes) != 1:
            raise ValueError(f"{source}: {split} images have different sizes {sorted(shapes)}; CIFAR-10 is 32x32")
        arrays[f"{split}_images"] = np.stack([img for _, img in chosen])
        arrays[f"{split}_labels"] = np.array([CIFAR10_CLASSES.index(c) for c, _ in chosen], dtype=np.int64)
    return arrays


def _read_image_folder(folder: Path) -> dict[str, np.ndarray]:
    items = []
    for split in ("train", "test"):
        for class_dir in sorted(p for p in (folder / split).iterdir() if p.is_dir()):
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() in _IMAGE_SUFFIXES:
                    items.append((split, class_dir.name, _decode(path.read_bytes(), str(path))))
    return _split_arrays(items, str(folder))


def _read_image_tar(tarball: Path) -> dict[str, np.ndarray]:
    items = []
    with tarfile.open(tarball) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        for member in members:
            parts = Path(member.name).parts
            # Accept an optional top-level folder: [prefix/]split/class/file.
            if len(parts) < 3 or parts[-3] not in ("train", "test") or Path(parts[-1]).suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            data = tar.extractfile(member).read()
            items.append((parts[-3], parts[-2], _decode(data, f"{tarball}:{member.name}")))
    return _split_arrays(items, str(tarball))


def _cached(source: Path, cache_dir: str | Path | None, decode) -> ImageClassificationData:
    """Decode ``source`` once and keep the arrays as ``.npy`` files keyed by its
    path, size and modification time, so an edited source is decoded again."""
    if cache_dir is None:
        return ImageClassificationData(name="cifar10", class_names=CIFAR10_CLASSES, source=str(source), **decode())
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = Path(cache_dir) / f"cifar10-{key}"
    names = ("train_images", "train_labels", "test_images", "test_labels")
    if all((folder / f"{n}.npy").is_file() for n in names):
        arrays = {n: np.load(folder / f"{n}.npy") for n in names}
    else:
        arrays = decode()
        folder.mkdir(parents=True, exist_ok=True)
        for n in names:
            # Write then rename, so a killed run never leaves a truncated cache file.
            tmp = folder / f"{n}.tmp.npy"
            np.save(tmp, arrays[n])
            tmp.replace(folder / f"{n}.npy")
    return ImageClassificationData(name="cifar10", class_names=CIFAR10_CLASSES, source=str(source), **arrays)


def _download(url: str, target: Path, md5: str) -> None:
    """Fetch ``url`` into ``target`` unless a copy with the right MD5 is there."""
    if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            out.write(response.read())
    except OSError as exc:
        raise DatasetNotFoundError(
            f"download of {url} failed ({exc}); fetch it by hand into {target.parent} or set CEAL_DATASETS"
        ) from exc
    digest = hashlib.md5(tmp.read_bytes()).hexdigest()
    if digest != md5:
        tmp.unlink()
        raise ValueError(f"{url} has MD5 {digest}, expected {md5}: the download is corrupt, try again")
    tmp.replace(target)
