"""Label deliveries coming back from the vendor.

The inbox mirrors the outbox: the answer to round ``r``'s export goes into
``<inbox>/round-NNNN/`` as one or more files, each either an ASAM OpenLABEL
document (``*.json`` with a top-level ``openlabel`` object) or an mmdet3d info
file (``*.pkl``, or ``*.json`` with ``data_list``), or a labeling tool's own
export: CVAT's Kitti Raw ``*.zip`` (:mod:`.cvat`), a Segments.ai release
(``*.json`` with ``dataset.samples``, :mod:`.segments`), Kognic's OpenLABEL
(``*.kognic.json``, :mod:`.kognic`). The folder names the round;
the files carry boxes keyed by frame id (:mod:`.openlabel`, :mod:`.mmdet3d_format`).
Files whose names start with ``.`` are in flight and skipped.

The inbox is written by someone else and read by unattended rounds, so every
entry in it is either read or rejected with its reason, and nothing in it can
raise (:func:`read_label_deliveries`): misnamed folders, links, FIFOs, oversized
or deeply nested files are refused, and each file is read once, as a regular
file, with bounds (:mod:`ceal_pipeline.bounded_input`). Reading is strict: a
file that does not parse, repeats a JSON key, holds a NaN, flat, tilted or
far-out box or a class outside the ontology, is rejected whole with the reason. Whether its frames
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

from ceal_pipeline.atomic_files import atomic_write_bytes, remove_stale_temporaries
from ceal_pipeline.bounded_input import UntrustedInputError, read_regular_file
from ceal_pipeline.export.file_drop import round_folder_name
from ceal_pipeline.export.mmdet3d_format import dump_infos, load_info_payload, mmdet3d_delivery, parse_mmdet3d_delivery
from ceal_pipeline.export.openlabel import (MalformedDelivery, load_openlabel_payload, openlabel_delivery,
                                            parse_openlabel_delivery, parse_strictly)
from ceal_pipeline.export.cvat import cvat_delivery, read_cvat_kitti_raw
from ceal_pipeline.export.kognic import DELIVERY_SUFFIX as KOGNIC_SUFFIX, kognic_delivery, read_kognic
from ceal_pipeline.export.segments import read_segments_release, segments_release
from ceal_pipeline.export.vendor_boxes import InvalidDeliveredBoxes, class_names_of
from ceal_pipeline.frames.records import FrameRecord
from ceal_pipeline.frames.result import printable

DELIVERY_FORMATS = ("openlabel", "mmdet3d", "cvat_kitti_raw", "segments", "kognic")
#: The file name suffix a delivery of each format is written (or copied into the inbox) with.
DELIVERY_SUFFIXES = {"openlabel": ".json", "mmdet3d": ".pkl", "cvat_kitti_raw": ".zip", "segments": ".json",
                     "kognic": KOGNIC_SUFFIX}
_ROUND_NAME = re.compile(r"^round-(\d+)$", re.ASCII)
#: Rounds are INTEGER keys in the history: 0 <= round < 2**31.
MAX_ROUND = 2**31

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
    """A delivery file (or an inbox entry that is not one) none of which was ingested, and why;
    ``sha256`` of the bytes read, ``""`` when none were (a link, a folder, a file too large)."""

    path: Path
    reason: str
    sha256: str | None = None
    #: not refused: its round's export is not recorded yet, and the next run reads it again
    deferred: bool = False


def delivery_folder(inbox: str | os.PathLike, round_index: int) -> Path:
    """Where the answer to round ``round_index``'s export goes."""
    return Path(inbox) / round_folder_name(round_index)


def round_of_folder(name: str) -> tuple[int | None, str | None]:
    """``(round, None)`` for an inbox folder name ``round-NNNN``, else ``(None, why not)``."""
    match = _ROUND_NAME.match(name)
    if match is None:
        return None, "not a round folder: deliveries go into round-NNNN/ (round-0003 answers round 3's export)"
    digits = match.group(1)
    if len(digits) > 10 or int(digits) >= MAX_ROUND:
        return None, f"round {digits} is out of range (rounds are 0 to {MAX_ROUND - 1}): check the folder name"
    if len(digits) < 4 or digits != f"{int(digits):04d}":
        return None, f"misnamed round folder: name it {round_folder_name(int(digits))}/ (zero-padded to 4 digits)"
    return int(digits), None


def detect_format(path: Path, head: bytes | None = None) -> str:
    """The delivery format of ``path`` from its name and (for JSON) its first bytes (``head``, read
    when None): ``openlabel``, ``mmdet3d``, ``cvat_kitti_raw`` (a ``.zip``), ``segments`` (a
    release: a ``dataset`` with ``samples``) or ``kognic`` (``*.kognic.json``)."""
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
        if head is None:
            try:
                with open(path, "rb") as handle:
                    head = handle.read(4096)
            except OSError as exc:
                raise MalformedDelivery(f"{path}: unreadable ({exc})") from None
        text = head[:4096].decode("utf-8", errors="replace")
        if '"openlabel"' in text:
            return "openlabel"
        return "segments" if '"dataset"' in text and '"samples"' in text else "mmdet3d"
    raise MalformedDelivery(f"{path}: not a delivery file (use .json for OpenLABEL, mmdet3d or a Segments.ai "
                            f"release, .pkl for mmdet3d, .zip for CVAT, {KOGNIC_SUFFIX} for Kognic)")


def _annotator(payload: object, fmt: str) -> str:
    try:
        meta = payload["metainfo"] if fmt == "mmdet3d" else payload["openlabel"]["metadata"]
        return str(meta.get("annotator", "")) or "unknown"
    except (KeyError, TypeError, AttributeError):
        return "unknown"


def read_delivery(path: str | os.PathLike, round_index: int, fmt: str | None = None,
                  vendor: str | None = None) -> LabelDelivery:
    """One delivery file answering ``round_index``; raises :class:`MalformedDelivery` or
    :class:`InvalidDeliveredBoxes` naming the file and the problem. The file is read once,
    as a regular file (never through a link) of bounded size, and parsed with bounds."""
    path = Path(path)
    detected = detect_format(path, head=b"" if path.suffix != ".json" else None)
    if fmt == "kognic" and detected == "openlabel":  # Kognic's export is OpenLABEL, in their conventions
        detected = "kognic"
    if fmt is not None and fmt != detected:
        raise MalformedDelivery(f"{path}: given as {fmt} but it reads as {detected}; pass --format {detected}")
    try:
        data = read_regular_file(path, what="delivery")
    except UntrustedInputError as exc:
        raise MalformedDelivery(f"{exc}") from None
    payload = None
    if detected in ("openlabel", "mmdet3d"):
        load, parse = ((load_openlabel_payload, parse_openlabel_delivery) if detected == "openlabel" else
                       (load_info_payload, parse_mmdet3d_delivery))
        payload = load(path, data)
        labels = parse_strictly(parse, payload, path)
    else:
        if path.suffix == ".json":  # bounded (depth, size, no key twice) before the tool's reader parses it
            payload = load_openlabel_payload(path, data)
        labels = _READERS[detected](path)
    if vendor is None:
        vendor = _annotator(payload, detected)
    return LabelDelivery(round_index, path, detected, vendor, hashlib.sha256(data).hexdigest(), labels)


def sha256_if_small(path: Path) -> str:
    """The sha256 of a regular file of bounded size, else ``""`` (never through a link, never a FIFO)."""
    try:
        return hashlib.sha256(read_regular_file(path)).hexdigest()
    except UntrustedInputError:
        return ""


def _refuse(path: Path, reason: str, *, read: bool = True) -> RejectedDelivery:
    # a name holding bytes that are not UTF-8 is shown escaped (logs and the history store text)
    return RejectedDelivery(Path(printable(str(path))), reason, sha256_if_small(path) if read else "")


def _read_round_folder(folder: Path, round_index: int, deliveries: list, rejected: list) -> None:
    remove_stale_temporaries(folder)
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.name.startswith("."):
            continue  # in flight (an atomic write's temporary file)
        if printable(entry.name) != entry.name:
            rejected.append(_refuse(path, "the file name is not UTF-8; rename the file (its frames are recorded "
                                          "by file name)", read=False))
        elif entry.is_symlink():
            rejected.append(_refuse(path, "a symbolic link; the inbox follows no links: copy the delivery in as a "
                                          "file", read=False))
        elif entry.is_dir(follow_symlinks=False):
            rejected.append(_refuse(path, f"a folder inside a round folder is not read: put the delivery files "
                                          f"directly in {folder}", read=False))
        elif not entry.is_file(follow_symlinks=False):
            rejected.append(_refuse(path, "not a regular file (a FIFO, socket or device); only plain files are "
                                          "read", read=False))
        else:
            try:
                deliveries.append(read_delivery(path, round_index))
            except (MalformedDelivery, InvalidDeliveredBoxes) as exc:
                rejected.append(_refuse(path, f"{exc}; nothing of the file was used: fix or remove it"))


#: The labeling tools' own delivery readers (OpenLABEL and mmdet3d deliveries are parsed above, with bounds).
_READERS = {"cvat_kitti_raw": read_cvat_kitti_raw, "segments": read_segments_release, "kognic": read_kognic}


def inbox_name(name: str, fmt: str) -> str:
    """The name a delivery file called ``name`` gets in the inbox: a Kognic export keeps its stem and
    ends in ``.kognic.json``, so the inbox reads it with Kognic's conventions; other names are kept."""
    if fmt == "kognic" and not name.endswith(KOGNIC_SUFFIX):
        return (name[:-5] if name.endswith(".json") else name) + KOGNIC_SUFFIX
    return name


def read_label_deliveries(inbox: str | os.PathLike) -> tuple[list[LabelDelivery], list[RejectedDelivery]]:
    """``(deliveries, rejected)`` under ``inbox/round-NNNN/``, oldest round first, files by name.

    The inbox is written by someone else: every entry in it is either read as a delivery or
    rejected with its reason, and nothing in it raises. Names starting with ``.`` are in
    flight and skipped (stale temporary files of killed writers are removed); a symbolic
    link is never followed; a file outside a round folder, a misnamed or out-of-range round
    folder (``round-1``, ``round-2147483648``), a subfolder, a FIFO or a file over
    :data:`ceal_pipeline.bounded_input.MAX_FILE_BYTES` is rejected, naming it.
    """
    inbox = Path(inbox)
    if not inbox.is_dir():
        return [], []
    deliveries, rejected = [], []
    remove_stale_temporaries(inbox)
    for entry in sorted(os.scandir(inbox), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            rejected.append(_refuse(path, "a symbolic link; the inbox follows no links: copy the deliveries in "
                                          "as files", read=False))
            continue
        if not entry.is_dir(follow_symlinks=False):
            rejected.append(_refuse(path, "a file outside a round folder: deliveries go into round-NNNN/ (the "
                                          "round whose export they answer)", read=entry.is_file(follow_symlinks=False)))
            continue
        round_index, problem = round_of_folder(entry.name)
        if problem is not None:
            rejected.append(_refuse(path, problem, read=False))
            continue
        try:
            _read_round_folder(path, round_index, deliveries, rejected)
        except OSError as exc:  # a folder that cannot be listed
            rejected.append(_refuse(path, f"cannot be read ({exc.strerror}); fix its permissions", read=False))
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
