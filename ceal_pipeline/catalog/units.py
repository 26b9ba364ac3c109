"""Source units: the pieces of a source an ingest parses or skips as a whole.

=============  =====================================  ==========================================
kind           unit                                   signature
=============  =====================================  ==========================================
``mmdet3d``    one info file (``*.pkl``/``.json``)    size, ``mtime_ns`` (no hash: GBs at scale)
``aimotive``   one sequence folder                    total size, newest ``mtime_ns``, sha256 of
                                                      the file listing (names, sizes, mtimes)
``synthetic``  the generated dataset's info file      size, ``mtime_ns``, sha256 of its manifest
=============  =====================================  ==========================================

:func:`parse_unit` is what a worker process runs: it parses one unit with the
frame readers (vectorised for info files) and writes its parts, sorted by frame
id, a slice of ``part_rows`` frames per part.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ceal_pipeline.canonical_paths import canonical_path
from ceal_pipeline.catalog import parts as part_files
from ceal_pipeline.catalog.fingerprint import frame_fingerprints
from ceal_pipeline.catalog.manifest import SourceUnit
from ceal_pipeline.catalog.schema import boxes_table, frames_table, quarantine_table, sort_by_frame_id
from ceal_pipeline.frames.batch import FrameBatch, batch_from_records, concat_batches
from ceal_pipeline.frames.records import QuarantinedFrame
from ceal_pipeline.frames.result import printable

SOURCE_KINDS = ("mmdet3d", "aimotive", "synthetic")
#: Options of the mmdet3d info reader that change what a unit parses into.
INFO_OPTIONS = ("lidar_prefix", "camera_prefix", "box_frame", "box_origin_z", "camera_key", "frame_id_prefix",
                "classes", "extra_roots")


@dataclass(frozen=True)
class UnitTask:
    """One unit to parse into parts under ``catalog_root`` named ``<part_prefix>-NNN``."""

    key: str
    kind: str
    path: str
    source_root: str
    catalog_root: str
    part_prefix: str
    check: str = "header"
    options: tuple = ()
    chunk_frames: int = 4096
    part_rows: int = 65536


@dataclass
class UnitResult:
    """What a worker reports back (the rows themselves are in the parts)."""

    key: str
    parts: list[str] = field(default_factory=list)
    frames: int = 0
    boxes: int = 0
    quarantined: int = 0
    dropped_objects: Counter = field(default_factory=Counter)
    unnamed_labels: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    #: of ``seconds``, the time spent loading (unpickling) the unit's info file
    load_s: float = 0.0


def options_digest(check: str, options: dict) -> str:
    text = json.dumps({"check": check, **options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_unit(kind: str, path: Path, scope: str, digest: str, hash_: str | None = None) -> SourceUnit:
    stat = path.stat()
    return SourceUnit(key=f"{kind}:{path}", kind=kind, path=str(path), scope=scope, size=stat.st_size,
                      mtime_ns=stat.st_mtime_ns, hash=hash_, options=digest)


def _folder_unit(kind: str, folder: Path, scope: str, digest: str) -> SourceUnit:
    listing, size, newest = [], 0, 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            stat = os.stat(os.path.join(dirpath, name))
            rel = os.path.relpath(os.path.join(dirpath, name), folder)
            listing.append(f"{rel}\t{stat.st_size}\t{stat.st_mtime_ns}")
            size, newest = size + stat.st_size, max(newest, stat.st_mtime_ns)
    digest_of_listing = hashlib.sha256("\n".join(sorted(listing)).encode()).hexdigest()
    return SourceUnit(key=f"{kind}:{folder}", kind=kind, path=str(folder), scope=scope, size=size,
                      mtime_ns=newest, hash=digest_of_listing, options=digest)


def discover_units(kind: str, source_root: Path, check: str, options: dict, progress=None):
    """``(units, parse_options, complete)`` of a source: ``complete`` is false when
    ``options`` picked some units (``info=``), so that units not picked stay as they are."""
    if kind not in SOURCE_KINDS:
        raise ValueError(f"unknown frame source {kind!r}: use one of {', '.join(SOURCE_KINDS)}")
    source_root = canonical_path(source_root)
    scope = f"{kind}:{source_root}"
    if kind == "aimotive":
        from ceal_pipeline.frames.aimotive import find_sequences

        _reject_unknown(kind, options, ())
        digest = options_digest(check, {})
        sequences = find_sequences(source_root)
        if not sequences:
            raise FileNotFoundError(f"no aiMotive sequence under {source_root}: expected folders holding "
                                    "dynamic/raw-revolutions (data/<split>/<condition>/<sequence>/...)")
        return [_folder_unit(kind, s, scope, digest) for s in sequences], {}, True
    if kind == "synthetic":
        from ceal_pipeline.frames.synthetic import INFO_FILE, generate_dataset, read_manifest

        generate_dataset(source_root, progress=progress, **_synthetic_options(source_root, options, read_manifest))
        manifest_hash = hashlib.sha256((source_root / "manifest.json").read_bytes()).hexdigest()
        digest = options_digest(check, {})
        return [_file_unit(kind, source_root / INFO_FILE, scope, digest, manifest_hash)], {}, True
    from ceal_pipeline.frames.mmdet3d_info import find_info_files

    _reject_unknown(kind, options, INFO_OPTIONS + ("info",))
    parse_options = {k: options[k] for k in INFO_OPTIONS if options.get(k) is not None}
    for key in ("classes", "extra_roots"):
        if parse_options.get(key) is not None:
            parse_options[key] = tuple(parse_options[key])
    digest = options_digest(check, parse_options)
    files = find_info_files(source_root, options.get("info"))
    return ([_file_unit(kind, f.resolve(), scope, digest) for f in files], parse_options,
            options.get("info") is None)


def _reject_unknown(kind: str, options: dict, accepted: tuple) -> None:
    unknown = sorted(k for k, v in options.items() if v is not None and k not in accepted)
    if unknown:
        raise TypeError(f"frame source {kind!r} does not take option(s) {unknown}; it takes "
                        f"{sorted(accepted + ('check',))}")


def _synthetic_options(root: Path, options: dict, read_manifest) -> dict:
    """Generator parameters as the synthetic reader resolves them: an existing
    dataset is kept when none are given, a missing one gets the defaults."""
    from dataclasses import fields

    from ceal_pipeline.frames.synthetic import SyntheticConfig

    given = {k: v for k, v in options.items() if v is not None}
    manifest = read_manifest(root)
    if not {k: v for k, v in given.items() if k != "overwrite"} and manifest is not None and "params" in manifest:
        known = {f.name for f in fields(SyntheticConfig)}
        return {k: v for k, v in manifest["params"].items() if k in known}
    defaults = SyntheticConfig()
    given.setdefault("n_frames", defaults.n_frames)
    given.setdefault("seed", defaults.seed)
    return given


def parse_unit(task: UnitTask) -> UnitResult:
    """Parse one unit and write its parts (the worker's entry point)."""
    started = time.perf_counter()
    result = UnitResult(key=task.key)
    pending: list[FrameBatch] = []
    pending_quarantine: list[QuarantinedFrame] = []

    def flush(final: bool) -> None:
        pending_frames = sum(len(b) for b in pending)
        if not final and pending_frames < task.part_rows:
            return
        if final and not pending_frames and not pending_quarantine and result.parts:
            return
        name = f"{task.part_prefix}-{len(result.parts):03d}"
        _write_part(Path(task.catalog_root), name, concat_batches(pending), pending_quarantine, task)
        result.parts.append(name)
        result.frames += pending_frames
        result.boxes += sum(len(b.labels) for b in pending)
        result.quarantined += len(pending_quarantine)
        pending.clear()
        pending_quarantine.clear()

    if task.kind == "aimotive":
        from ceal_pipeline.frames.aimotive import read_sequence

        source = read_sequence(Path(task.path), check=task.check)
        box_dir = Path(task.path) / "dynamic" / "box" / "3d_body"
        annotations = [str(box_dir / f"frame_{r.frame_id.rsplit(':', 1)[-1]}.json") if r.is_labeled else ""
                       for r in source.frames]
        pending.append(batch_from_records(source.frames, annotations))
        pending_quarantine.extend(source.quarantined)
        result.dropped_objects.update(source.dropped_objects)
    else:
        from contextlib import nullcontext

        from ceal_pipeline.frames.mmdet3d_info import gc_paused, iter_info_chunks
        from ceal_pipeline.frames.synthetic import dataset_lock

        timings: dict = {}
        reading = dataset_lock(task.source_root, exclusive=False) if task.kind == "synthetic" else nullcontext()
        with gc_paused(), reading:
            for parsed in iter_info_chunks(Path(task.path), Path(task.source_root), chunk_frames=task.chunk_frames,
                                           check=task.check, timings=timings, **dict(task.options)):
                pending.append(parsed.batch)
                pending_quarantine.extend(parsed.quarantined)
                result.dropped_objects.update(parsed.dropped_objects)
                result.unnamed_labels.update(parsed.unnamed_labels)
                flush(final=False)
        result.load_s = timings.get("load_s", 0.0)
    flush(final=True)
    result.seconds = time.perf_counter() - started
    return result


def _write_part(root: Path, name: str, batch: FrameBatch, quarantined: list[QuarantinedFrame],
                task: UnitTask) -> None:
    batch, fingerprints = sort_by_frame_id(batch, frame_fingerprints(batch))
    source_file = printable(task.path)  # a folder name that is not UTF-8 must not abort the source
    part_files.write_table(part_files.part_path(root, "frames", name),
                           frames_table(batch, fingerprints, source_kind=task.kind, source_file=source_file),
                           "frames")
    part_files.write_table(part_files.part_path(root, "boxes", name), boxes_table(batch), "boxes")
    quarantined = sorted(quarantined, key=lambda q: q.frame_id)
    part_files.write_table(part_files.part_path(root, "quarantine", name),
                           quarantine_table(quarantined, source_file), "quarantine")
