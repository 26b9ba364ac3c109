"""Label deliveries coming back from the vendor.

The inbox mirrors the outbox: the answer to round ``r``'s export goes into
``<inbox>/round-NNNN/`` as one or more files, each either an ASAM OpenLABEL
document (``*.json`` with a top-level ``openlabel`` object) or an mmdet3d info
file (``*.pkl``, or ``*.json`` with ``data_list``). The folder names the round;
the files carry boxes keyed by frame id (:mod:`.openlabel`, :mod:`.mmdet3d_format`).
Files whose names start with ``.`` are in flight and ignored.

Reading is strict: a file that does not parse, or holds a NaN or flat box or a
class outside the ontology, is rejected whole with the reason. Whether its frames
were exported in that round, and whether a frame was delivered before with other
boxes, are checks against the history (:mod:`.label_ingest`).

:func:`ground_truth_labels` and :func:`write_label_delivery` are what a simulated
vendor (``ceal_pipeline/cli/demo_vendor.py``) and the self-check write with.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ceal_pipeline.atomic_files import atomic_write_bytes
from ceal_pipeline.export.file_drop import round_folder_name
from ceal_pipeline.export.mmdet3d_format import dump_infos, mmdet3d_delivery, read_mmdet3d
from ceal_pipeline.export.openlabel import MalformedDelivery, openlabel_delivery, read_openlabel
from ceal_pipeline.export.vendor_boxes import InvalidDeliveredBoxes, class_names_of
from ceal_pipeline.frames.records import FrameRecord

DELIVERY_FORMATS = ("openlabel", "mmdet3d")
_ROUND_FOLDER = re.compile(r"^round-(\d{4,})$")

#: frame id -> (boxes (n, 7) in the pipeline's convention, class names)
FrameLabels = dict[str, tuple[np.ndarray, tuple[str, ...]]]


@dataclass(frozen=True)
class LabelDelivery:
    """One delivered file: the round it answers, its boxes per frame, and where it came from."""

    round_index: int
    path: Path
    format: str
    vendor: str
    sha256: str
    labels: FrameLabels

    @property
    def frame_ids(self) -> tuple[str, ...]:
        return tuple(self.labels)


@dataclass(frozen=True)
class RejectedDelivery:
    """A delivery file none of which was ingested, and why."""

    path: Path
    reason: str


def delivery_folder(inbox: str | os.PathLike, round_index: int) -> Path:
    """Where the answer to round ``round_index``'s export goes."""
    return Path(inbox) / round_folder_name(round_index)


def detect_format(path: Path) -> str:
    """``openlabel`` or ``mmdet3d`` from the file's name and (for JSON) its top-level key."""
    if path.suffix == ".pkl":
        return "mmdet3d"
    if path.suffix == ".json":
        try:
            with open(path, "rb") as handle:
                head = handle.read(4096).decode("utf-8", errors="replace")
        except OSError as exc:
            raise MalformedDelivery(f"{path}: unreadable ({exc})") from None
        return "openlabel" if '"openlabel"' in head else "mmdet3d"
    raise MalformedDelivery(f"{path}: not a delivery file (use .json for OpenLABEL or mmdet3d, .pkl for mmdet3d)")


def _annotator(path: Path, fmt: str) -> str:
    if fmt == "openlabel" or path.suffix == ".json":
        try:
            payload = json.loads(path.read_text())
            meta = payload["openlabel"]["metadata"] if fmt == "openlabel" else payload["metainfo"]
            return str(meta.get("annotator", "")) or "unknown"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return "unknown"
    return "unknown"


def read_delivery(path: str | os.PathLike, round_index: int, fmt: str | None = None,
                  vendor: str | None = None) -> LabelDelivery:
    """One delivery file answering ``round_index``; raises :class:`MalformedDelivery` or
    :class:`InvalidDeliveredBoxes` naming the file and the problem."""
    path = Path(path)
    detected = detect_format(path)
    if fmt is not None and fmt != detected:
        raise MalformedDelivery(f"{path}: given as {fmt} but it reads as {detected}; pass --format {detected}")
    labels = read_openlabel(path) if detected == "openlabel" else read_mmdet3d(path)
    if vendor is None:
        vendor = _annotator(path, detected)
    return LabelDelivery(round_index, path, detected, vendor, hashlib.sha256(path.read_bytes()).hexdigest(), labels)


def read_label_deliveries(inbox: str | os.PathLike) -> tuple[list[LabelDelivery], list[RejectedDelivery]]:
    """``(deliveries, rejected)`` under ``inbox/round-NNNN/``, oldest round first, files by name."""
    inbox = Path(inbox)
    if not inbox.is_dir():
        return [], []
    deliveries, rejected = [], []
    for folder in sorted(p for p in inbox.iterdir() if p.is_dir() and _ROUND_FOLDER.match(p.name)):
        round_index = int(_ROUND_FOLDER.match(folder.name).group(1))
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                deliveries.append(read_delivery(path, round_index))
            except (MalformedDelivery, InvalidDeliveredBoxes) as exc:
                rejected.append(RejectedDelivery(path, f"{exc}; nothing of the file was used: fix or remove it"))
    return deliveries, rejected


def delivery_bytes(labels: Mapping[str, tuple[np.ndarray, Sequence[str]]], fmt: str, vendor: str) -> bytes:
    """A delivery file's bytes in ``fmt`` from frame id -> (pipeline boxes, class names)."""
    labels = {f: (np.asarray(b, np.float64).reshape(-1, 7), tuple(n)) for f, (b, n) in labels.items()}
    if fmt == "openlabel":
        return (json.dumps(openlabel_delivery(labels, vendor), indent=1, allow_nan=True) + "\n").encode("utf-8")
    if fmt == "mmdet3d":
        return dump_infos(mmdet3d_delivery(labels, vendor))
    raise ValueError(f"unknown delivery format {fmt!r}: use one of {DELIVERY_FORMATS}")


def write_label_delivery(inbox: str | os.PathLike, round_index: int,
                         labels: Mapping[str, tuple[np.ndarray, Sequence[str]]], *, fmt: str = "openlabel",
                         vendor: str = "simulated-vendor", name: str = "delivery") -> Path:
    """Write (atomically) a delivery answering ``round_index`` into the inbox; returns its path."""
    suffix = ".json" if fmt == "openlabel" else ".pkl"
    path = delivery_folder(inbox, round_index) / f"{name}{suffix}"
    atomic_write_bytes(path, delivery_bytes(labels, fmt, vendor))
    return path


def ground_truth_labels(records: Sequence[FrameRecord]) -> FrameLabels:
    """Frame id -> (boxes, class names) of annotated records: what a perfect vendor returns."""
    out = {}
    for record in records:
        if record.boxes is None:
            raise ValueError(f"frame {record.frame_id} has no ground truth to deliver")
        out[record.frame_id] = (np.asarray(record.boxes, np.float64), class_names_of(record.labels, record.class_names))
    return out
