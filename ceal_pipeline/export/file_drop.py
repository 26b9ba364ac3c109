"""The vendor file drop: one folder per acquisition round in an outbox.

A round's export is the folder ``<outbox>/round-NNNN/`` holding

- ``selected_frames.csv``: header ``frame_id,sequence_id,score,rank`` then one row per frame;
- ``selected_frames.jsonl``: the same rows as JSON objects, one a line;
- ``explanations.jsonl`` (when the scores were explained): per frame, in rank
  order, ``frame_id``, ``rank``, ``score``, ``score_unit`` and ``explanation``:
  why it was bought (:meth:`ceal_pipeline.core.frame_explanation.FrameExplanation.to_record`:
  detections per class, the most uncertain objects with their MC spread, the
  aggregate, the no-detection floor flag), or ``null``;
- ``manifest.json``: round, model version, count, created time and the sha256
  of each data file;
- the files a vendor labels from (``project.json``, ``tasks.jsonl``,
  ``openlabel/<frame>.json``, ``mmdet3d_infos.pkl``: see :mod:`.vendor_formats`),
  passed in as ``files`` and checksummed like the rest.

Atomicity: everything is written into a hidden staging folder inside the outbox
(same filesystem), fsynced, then the folder is renamed into place. A vendor
polling the outbox either sees no ``round-NNNN`` folder or a complete one; a
process killed mid-write leaves only a ``.staging-*`` folder that the next
export removes.

Exactly one export per round: if ``round-NNNN`` already exists with the same
frames it is returned unchanged (``created=False``); if it exists with
different frames the export refuses, because a drop may already have been
picked up and paid for.

This module is plain Python (no Dagster, no DuckDB) so it is testable alone.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ceal_pipeline.frames.records import validate_frame_id

CSV_NAME = "selected_frames.csv"
JSONL_NAME = "selected_frames.jsonl"
EXPLANATIONS_NAME = "explanations.jsonl"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "ceal-vendor-export/1"
_CSV_HEADER = ("frame_id", "sequence_id", "score", "rank")

#: A text cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: Drop folders are read by the vendor's sync user, not only by the pipeline's (mkdtemp makes 0700).
EXPORT_FOLDER_MODE = 0o755
#: Mode of every file of a drop (set explicitly: a umask of 077 must not hide it from the vendor's reader).
EXPORT_FILE_MODE = 0o644


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell a spreadsheet shows as text: a leading ``'`` before
    a formula character. Only text fields go through this; numbers are written
    by the pipeline itself."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class ExportConflict(RuntimeError):
    """A round already has an export with different frames."""


class CorruptExport(RuntimeError):
    """An export folder whose files do not match their manifest."""


@dataclass(frozen=True)
class ExportedFrame:
    """One exported row: the frame, its sequence, its acquisition score (nats) and, when the
    score was explained, why it was bought (a JSON-ready record)."""

    frame_id: str
    sequence_id: str = ""
    score: float = float("nan")
    explanation: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class VendorExport:
    """A round's drop as written (or found) in the outbox."""

    round_index: int
    model_version: str
    folder: Path
    frame_ids: tuple[str, ...]
    sha256: dict[str, str] = field(default_factory=dict)
    created: bool = True

    @property
    def count(self) -> int:
        return len(self.frame_ids)

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_NAME


def round_folder_name(round_index: int) -> str:
    """``round-0003`` for round 3: zero-padded so folders sort by round."""
    if round_index < 0:
        raise ValueError(f"round index must be >= 0, got {round_index}")
    return f"round-{round_index:04d}"


def export_folder(outbox: str | os.PathLike, round_index: int) -> Path:
    """Where round ``round_index``'s drop lives (whether or not it exists yet)."""
    return Path(outbox) / round_folder_name(round_index)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checked_name(name: str) -> str:
    """A relative file name inside the drop (no absolute path, no ``..``, not the manifest)."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts or name == MANIFEST_NAME or "\\" in name:
        raise ValueError(f"export file name {name!r} must be a relative path inside the drop folder")
    return name


def _render(rows: Sequence[ExportedFrame]) -> tuple[bytes, bytes]:
    """CSV and JSONL bytes for ``rows``; rank is 1-based selection order."""
    csv_buffer = io.StringIO()
    writer = csv.writer(csv_buffer, lineterminator="\n")
    writer.writerow(_CSV_HEADER)
    jsonl_lines = []
    for rank, row in enumerate(rows, start=1):
        # repr-exact floats so the CSV and JSONL agree to the bit; NaN becomes empty/null.
        score = None if row.score != row.score else float(row.score)
        writer.writerow(
            (spreadsheet_safe(row.frame_id), spreadsheet_safe(row.sequence_id), "" if score is None else repr(score),
             rank)
        )
        jsonl_lines.append(
            json.dumps({"frame_id": row.frame_id, "sequence_id": row.sequence_id, "score": score, "rank": rank})
        )
    jsonl = "".join(line + "\n" for line in jsonl_lines)
    return csv_buffer.getvalue().encode("utf-8"), jsonl.encode("utf-8")


def _render_explanations(rows: Sequence[ExportedFrame]) -> bytes | None:
    """``explanations.jsonl`` bytes, or None when no row is explained."""
    if all(row.explanation is None for row in rows):
        return None
    lines = (
        json.dumps({"frame_id": row.frame_id, "rank": rank, "score": None if row.score != row.score else row.score,
                    "score_unit": "nats", "explanation": None if row.explanation is None else dict(row.explanation)})
        for rank, row in enumerate(rows, start=1)
    )
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _write_synced(path: Path, data: bytes, mode: int | None = None) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        if mode is not None:  # explicit, whatever the process's umask says
            os.fchmod(handle.fileno(), mode)
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    # The rename is only durable once the parent directory entry is on disk.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clear_stale_staging(outbox: Path, round_index: int) -> None:
    prefix = f".staging-{round_folder_name(round_index)}-"
    for stale in outbox.glob(prefix + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def read_vendor_export(folder: str | os.PathLike) -> VendorExport:
    """Read and verify a drop: every file's sha256 must match the manifest.

    Raises :class:`CorruptExport` naming the file when a checksum or the row
    count differs, and ``FileNotFoundError`` when the folder has no manifest.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: no export manifest (is {folder} a vendor export folder?)")
    manifest = json.loads(manifest_path.read_text())
    checksums: dict[str, str] = manifest.get("files", {})
    for name in (CSV_NAME, JSONL_NAME):
        if name not in checksums:
            raise CorruptExport(f"{manifest_path}: no checksum for {name}; re-export the round")
    for name in checksums:
        try:
            _checked_name(name)
        except ValueError:
            raise CorruptExport(f"{manifest_path}: lists {name!r}, not a file of the drop; re-export the round") from None
        path = folder / name
        actual = _sha256(path.read_bytes()) if path.is_file() else "<missing>"
        if actual != checksums[name]:
            raise CorruptExport(
                f"{path}: sha256 {actual} does not match the manifest's {checksums[name]}; "
                "the drop was modified after export: restore it or delete the folder and re-export"
            )
    with open(folder / CSV_NAME, newline="") as handle:
        frame_ids = tuple(row["frame_id"] for row in csv.DictReader(handle))
    if len(frame_ids) != manifest.get("count"):
        raise CorruptExport(f"{folder / CSV_NAME}: {len(frame_ids)} rows but the manifest says {manifest.get('count')}")
    return VendorExport(
        round_index=int(manifest["round"]),
        model_version=str(manifest["model_version"]),
        folder=folder,
        frame_ids=frame_ids,
        sha256=dict(checksums),
        created=False,
    )


def write_vendor_export(
    outbox: str | os.PathLike,
    round_index: int,
    model_version: str,
    rows: Sequence[ExportedFrame],
    *,
    extra: dict | None = None,
    files: Mapping[str, bytes] | None = None,
    modes: tuple[int, int] | None = None,
) -> VendorExport:
    """Write round ``round_index``'s drop into ``outbox`` atomically, once.

    ``rows`` are in selection order (best first). ``extra`` is merged into the
    manifest (e.g. the run id); ``files`` maps further relative file names
    (``/``-separated, sub-folders allowed) to their bytes. Returns the export; ``created`` is False when
    an identical drop for the round was already there. ``modes`` = ``(folder mode,
    file mode)`` of what is written, set explicitly so that the process's umask does not
    decide who can read the drop (default :data:`EXPORT_FOLDER_MODE`, :data:`EXPORT_FILE_MODE`). Raises
    :class:`ExportConflict` when the round was exported with other frames, and
    ``InvalidFrameId`` / ``ValueError`` for unsafe ids or duplicates.
    """
    if not rows:
        raise ValueError(f"round {round_index}: refusing to export an empty selection")
    frame_ids = tuple(validate_frame_id(row.frame_id) for row in rows)
    if len(set(frame_ids)) != len(frame_ids):
        seen: set[str] = set()
        duplicates = sorted({f for f in frame_ids if f in seen or seen.add(f)})
        raise ValueError(f"round {round_index}: duplicate frame ids in the export: {duplicates[:10]}")

    outbox = Path(outbox)
    outbox.mkdir(parents=True, exist_ok=True)
    final = export_folder(outbox, round_index)
    if final.exists():
        existing = read_vendor_export(final)
        if existing.frame_ids != frame_ids:
            raise ExportConflict(
                f"{final}: round {round_index} was already exported with {existing.count} other frames; "
                "an export is never replaced (the vendor may have picked it up). Start a new round instead."
            )
        return existing

    csv_bytes, jsonl_bytes = _render(rows)
    contents = {CSV_NAME: csv_bytes, JSONL_NAME: jsonl_bytes}
    explanations = _render_explanations(rows)
    if explanations is not None:
        contents[EXPLANATIONS_NAME] = explanations
    for name, data in (files or {}).items():
        contents[_checked_name(name)] = data
    checksums = {name: _sha256(data) for name, data in contents.items()}
    manifest = {
        "format": MANIFEST_FORMAT,
        "round": round_index,
        "model_version": model_version,
        "count": len(frame_ids),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": checksums,
        **(extra or {}),
    }

    folder_mode, file_mode = modes or (EXPORT_FOLDER_MODE, EXPORT_FILE_MODE)
    _clear_stale_staging(outbox, round_index)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{round_folder_name(round_index)}-", dir=outbox))
    try:
        for name, data in contents.items():
            missing, folder = [], (staging / name).parent
            while folder != staging and not folder.exists():
                missing.append(folder)
                folder = folder.parent
            for folder in reversed(missing):
                folder.mkdir()
                os.chmod(folder, folder_mode)
            _write_synced(staging / name, data, file_mode)
        _write_synced(staging / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"), file_mode)
        _fsync_dir(staging)
        os.chmod(staging, folder_mode)
        os.rename(staging, final)  # atomic on one filesystem; fails if a concurrent writer won
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if final.exists():  # lost a race with an identical writer: same contract as above
            return write_vendor_export(outbox, round_index, model_version, rows, extra=extra, files=files,
                                       modes=modes)
        raise
    _fsync_dir(outbox)
    return VendorExport(
        round_index=round_index,
        model_version=model_version,
        folder=final,
        frame_ids=frame_ids,
        sha256=checksums,
        created=True,
    )


def list_exports(outbox: str | os.PathLike) -> list[Path]:
    """Every complete round folder in ``outbox``, oldest round first."""
    outbox = Path(outbox)
    if not outbox.is_dir():
        return []
    return sorted(p for p in outbox.glob("round-[0-9]*") if (p / MANIFEST_NAME).is_file())
