"""Label deliveries coming back from the vendor, and a simulated vendor for demos.

The inbox mirrors the outbox: the answer to round ``r``'s export goes into
``<inbox>/round-NNNN/`` as one or more files, each either an ASAM OpenLABEL
document (``*.json`` with a top-level ``openlabel`` object) or an mmdet3d info
file (``*.pkl``, or ``*.json`` with ``data_list``), or a labeling tool's own
export: CVAT's Kitti Raw ``*.zip`` (:mod:`.cvat`), a Segments.ai release
(``*.json`` with ``dataset.samples``, :mod:`.segments`), Kognic's OpenLABEL
(``*.kognic.json``, :mod:`.kognic`). The folder names the round;
the files carry boxes keyed by frame id (:mod:`.openlabel`, :mod:`.mmdet3d_format`).
Files whose names start with ``.`` are in flight and ignored.

Reading is strict: a file that does not parse, or holds a NaN or flat box or a
class outside the ontology, is rejected whole with the reason. Whether its frames
were exported in that round, and whether a frame was delivered before with other
boxes, are checks against the history (:mod:`.label_ingest`).

In simulations (the demo, tests) the source holds ground truth for every frame;
:func:`simulate_vendor` answers each export with an OpenLABEL delivery of the
ground truth of exactly the exported frames, so the real ingest path runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ceal_pipeline.atomic_files import atomic_write_bytes
from ceal_pipeline.export.cvat import cvat_delivery, read_cvat_kitti_raw
from ceal_pipeline.export.file_drop import list_exports, read_vendor_export, round_folder_name
from ceal_pipeline.export.kognic import DELIVERY_SUFFIX as KOGNIC_SUFFIX, kognic_delivery, read_kognic
from ceal_pipeline.export.mmdet3d_format import dump_infos, mmdet3d_delivery, read_mmdet3d
from ceal_pipeline.export.openlabel import MalformedDelivery, openlabel_delivery, read_openlabel
from ceal_pipeline.export.segments import read_segments_release, segments_release
from ceal_pipeline.export.vendor_boxes import InvalidDeliveredBoxes, class_names_of
from ceal_pipeline.frames.records import FrameRecord

DELIVERY_FORMATS = ("openlabel", "mmdet3d", "cvat_kitti_raw", "segments", "kognic")
#: The file name suffix a delivery of each format is written (or copied into the inbox) with.
DELIVERY_SUFFIXES = {"openlabel": ".json", "mmdet3d": ".pkl", "cvat_kitti_raw": ".zip", "segments": ".json",
                     "kognic": KOGNIC_SUFFIX}
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
    """The delivery format of ``path`` from its name and (for JSON) its top-level key: ``openlabel``,
    ``mmdet3d``, ``cvat_kitti_raw`` (a ``.zip``), ``segments`` (a release) or ``kognic`` (``*.kognic.json``)."""
    if path.suffix == ".pkl":
        return "mmdet3d"
    if path.suffix == ".zip":
        from ceal_pipeline.export.cvat import is_cvat_zip

        if is_cvat_zip(path):
            return "cvat_kitti_raw"
        raise MalformedDelivery(f"{path}: a .zip delivery must be CVAT's 'Kitti Raw Format 1.0' export "
                                "(tracklet_labels.xml and frame_list.txt)")
    if path.name.endswith(KOGNIC_SUFFIX):
        return "kognic"
    if path.suffix == ".json":
        try:
            with open(path, "rb") as handle:
                head = handle.read(4096).decode("utf-8", errors="replace")
        except OSError as exc:
            raise MalformedDelivery(f"{path}: unreadable ({exc})") from None
        if '"openlabel"' in head:
            return "openlabel"
        return "segments" if _is_segments_release(path) else "mmdet3d"
    raise MalformedDelivery(f"{path}: not a delivery file (use .json for OpenLABEL, mmdet3d or a Segments.ai "
                            f"release, .pkl for mmdet3d, .zip for CVAT, {KOGNIC_SUFFIX} for Kognic)")


def _is_segments_release(path: Path) -> bool:
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(payload, dict) and isinstance(payload.get("dataset"), dict) and "samples" in payload["dataset"]


def _annotator(path: Path, fmt: str) -> str:
    if fmt in ("openlabel", "kognic", "mmdet3d") and path.suffix == ".json":
        try:
            payload = json.loads(path.read_text())
            meta = payload["metainfo"] if fmt == "mmdet3d" else payload["openlabel"]["metadata"]
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
    labels = _READERS[detected](path)
    if vendor is None:
        vendor = _annotator(path, detected)
    return LabelDelivery(round_index, path, detected, vendor, hashlib.sha256(path.read_bytes()).hexdigest(), labels)


_READERS = {"openlabel": read_openlabel, "mmdet3d": read_mmdet3d, "cvat_kitti_raw": read_cvat_kitti_raw,
            "segments": read_segments_release, "kognic": read_kognic}


def inbox_name(name: str, fmt: str) -> str:
    """The name a delivery file called ``name`` gets in the inbox: a Kognic export keeps its stem and
    ends in ``.kognic.json``, so the inbox reads it with Kognic's conventions; other names are kept."""
    if fmt == "kognic" and not name.endswith(KOGNIC_SUFFIX):
        return (name[:-5] if name.endswith(".json") else name) + KOGNIC_SUFFIX
    return name


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
    if fmt == "cvat_kitti_raw":
        return cvat_delivery(labels)
    if fmt == "segments":
        return (json.dumps(segments_release(labels, vendor), indent=1, allow_nan=True) + "\n").encode("utf-8")
    if fmt == "kognic":
        return (json.dumps(kognic_delivery(labels, vendor), indent=1, allow_nan=True) + "\n").encode("utf-8")
    raise ValueError(f"unknown delivery format {fmt!r}: use one of {DELIVERY_FORMATS}")


def write_label_delivery(inbox: str | os.PathLike, round_index: int,
                         labels: Mapping[str, tuple[np.ndarray, Sequence[str]]], *, fmt: str = "openlabel",
                         vendor: str = "simulated-vendor", name: str = "delivery") -> Path:
    """Write (atomically) a delivery answering ``round_index`` into the inbox; returns its path."""
    path = delivery_folder(inbox, round_index) / f"{name}{DELIVERY_SUFFIXES[fmt]}"
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


def simulate_vendor(outbox: str | os.PathLike, inbox: str | os.PathLike,
                    ground_truth: Callable[[list[str]], Sequence[FrameRecord]]) -> list[Path]:
    """Answer every verified export in ``outbox`` that has no delivery yet with an OpenLABEL
    delivery of ``ground_truth(frame ids)``; return the new delivery files."""
    new = []
    for folder in list_exports(outbox):
        export = read_vendor_export(folder)  # verifies the checksums, as a vendor would
        answer = delivery_folder(inbox, export.round_index)
        if answer.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in answer.iterdir()):
            continue
        labels = ground_truth_labels(ground_truth(list(export.frame_ids)))
        new.append(write_label_delivery(inbox, export.round_index, labels))
    return new
