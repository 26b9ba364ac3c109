"""Incremental ingest: parse only new or changed source units, then commit.

One ingest:

1. takes the catalog's lock (one writer; readers never wait), reads the manifest
   and deletes part files no manifest refers to (left by a killed ingest, or
   replaced two generations ago);
2. discovers the source's units and their signatures; units whose signature and
   options match the manifest are skipped unread;
3. parses the others, one unit per worker process when there are several large
   ones, each writing its own parts (part names carry the new generation, so
   nothing live is overwritten);
4. compares the live catalog before and after by frame id and fingerprint:
   added, changed and removed frames are counted in the report and written to
   ``changes/<generation>.parquet``. A removed frame leaves the live catalog (its
   unit no longer holds it) and stays listed in the changes log with its last
   fingerprint; a changed frame's new content replaces the old;
5. finds frame ids held twice (against the frame-id index, and within the
   parsed units): the copy that was already live, else the first by unit path,
   is kept; the others are quarantined with a reason naming both files, and
   reported (:mod:`.duplicates`);
6. writes the new frame-id index (:mod:`.index`) and commits by writing the
   manifest atomically. A run killed before this leaves the previous catalog
   intact.

With ``info=`` naming some info files only those are considered; without it a
unit of the same source root that disappeared counts as removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ceal_pipeline.atomic_files import remove_stale_temporaries
from ceal_pipeline.canonical_paths import canonical_path
from ceal_pipeline.catalog import parts as part_files
from ceal_pipeline.catalog.duplicates import drop_rows, find_duplicates
from ceal_pipeline.catalog.index import index_rows, read_index, write_index
from ceal_pipeline.catalog.manifest import Manifest, read_manifest, write_manifest
from ceal_pipeline.catalog.report import IngestReport
from ceal_pipeline.catalog.schema import (
    FRAMES_SCHEMA,
)
from ceal_pipeline.catalog.units import UnitResult, UnitTask, discover_units, parse_unit
from ceal_pipeline.frames.mmdet3d_info import unnamed_labels_message

LOCK_FILE = ".ingest.lock"
#: Below this many bytes of source to parse, worker processes cost more than they save.
PARALLEL_MIN_BYTES = 64 << 20

CHANGES_SCHEMA = pa.schema([
    ("generation", pa.int64()), ("change", pa.string()), ("frame_id", pa.string()), ("source_file", pa.string()),
    ("other_file", pa.string()), ("old_fingerprint", pa.binary(32)), ("new_fingerprint", pa.binary(32)),
])


class CatalogBusy(RuntimeError):
    """Another process is ingesting into the same catalog."""


@contextmanager
def _writer_lock(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CatalogBusy(f"another process is ingesting into the frame catalog at {root}; wait for it to "
                              "finish (one writer at a time), then ingest again") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _collect_garbage(root: Path, manifest: Manifest) -> None:
    # under the ingest lock no other writer is at work: a killed one's .manifest.json.PID.tmp goes now
    remove_stale_temporaries(root, older_than_s=0.0)
    live = {table: set(manifest.parts) for table in part_files.TABLES}
    live.update(changes=set(manifest.changes), index={manifest.index})
    for table, names in live.items():
        folder = root / table
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            name = part_files.part_name(path)
            stale = name is None or name not in names
            if stale and (name is not None or path.name.endswith(".tmp")):
                path.unlink(missing_ok=True)


def _run_tasks(tasks: list[UnitTask], workers: int | None, sizes: list[int], progress) -> list[UnitResult]:
    workers = min(len(tasks), os.cpu_count() or 1) if workers is None else max(1, workers)
    results = []
    if workers > 1 and len(tasks) > 1 and sum(sizes) >= PARALLEL_MIN_BYTES:
        # spawn, not fork: the parent may hold DuckDB/Arrow thread pools, which fork does not copy safely
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(parse_unit, tasks):
                results.append(result)
                if progress:
                    progress(len(results), len(tasks))
        return results
    for task in tasks:
        results.append(parse_unit(task))
        if progress:
            progress(len(results), len(tasks))
    return results


def _ids_and_fingerprints(root: Path, parts: list[str]) -> pa.Table:
    tables = [part_files.read_table(part_files.part_path(root, "frames", p), columns=["frame_id", "fingerprint",
                                                                                     "source_file"])
              for p in parts]
    if not tables:
        return pa.table({"frame_id": pa.array([], pa.string()), "fingerprint": pa.array([], pa.binary(32)),
                         "source_file": pa.array([], pa.string())})
    return pa.concat_tables(tables)


def ingest(root: Path, kind: str, source_root: Path, *, check: str = "header", workers: int | None = None,
           chunk_frames: int = 4096, part_rows: int = 65536, progress=None, **options) -> IngestReport:
    """See the module docstring; :meth:`FrameCatalog.ingest` documents the arguments."""
    started = time.perf_counter()
    root, source_root = Path(root), Path(source_root)
    report = IngestReport(kind=kind, source_root=str(source_root))
    with _writer_lock(root):
        manifest = read_manifest(root, upgrade=True)
        _collect_garbage(root, manifest)
        if manifest.upgraded_from is not None:
            report.warnings.append(f"the catalog was written in format version {manifest.upgraded_from}; every "
                                   "source unit is parsed again to rebuild it in the current format")
        units, parse_options, complete = discover_units(kind, source_root, check, options, progress=progress)
        scope = units[0].scope if units else f"{kind}:{canonical_path(source_root)}"
        fresh = {u.key: u for u in units}
        old_units = manifest.units
        to_parse = [u for u in units if u.key not in old_units or not old_units[u.key].same_source(u)]
        removed_units = [u for k, u in old_units.items() if complete and u.scope == scope and k not in fresh]
        generation = manifest.generation + 1
        report.generation = generation
        report.units_seen, report.units_parsed = len(units), len(to_parse)
        report.units_skipped, report.units_removed = len(units) - len(to_parse), len(removed_units)
        report.parsed_files = [u.path for u in to_parse]
        if not to_parse and not removed_units:
            report.generation = manifest.generation
            report.frames = manifest.frame_count()
            report.boxes = sum(u.boxes for u in old_units.values())
            report.seconds = time.perf_counter() - started
            return report

        tasks = [UnitTask(key=u.key, kind=u.kind, path=u.path, source_root=str(canonical_path(source_root)),
                          catalog_root=str(root), check=check, options=tuple(sorted(parse_options.items())),
                          part_prefix=f"g{generation:06d}-{hashlib.sha1(os.fsencode(u.key)).hexdigest()[:10]}",
                          chunk_frames=chunk_frames, part_rows=part_rows)
                 for u in sorted(to_parse, key=lambda u: u.key)]
        results = {r.key: r for r in _run_tasks(tasks, workers, [u.size for u in to_parse], progress)}

        affected_old = [p for u in to_parse if u.key in old_units for p in old_units[u.key].parts]
        affected_old += [p for u in removed_units for p in u.parts]
        live = read_index(root, manifest.index)
        if affected_old:
            live = live.filter(pc.invert(pc.is_in(live.column("part"), value_set=pa.array(affected_old))))
        new_parts = [p for key in sorted(results) for p in results[key].parts]
        duplicates = _resolve_duplicates(root, live, new_parts, results, fresh, old_units, report)
        changes = _changes(root, generation, affected_old, results, report, duplicates)

        for key, result in results.items():
            unit = fresh[key]
            unit.parts, unit.frames, unit.boxes = result.parts, result.frames, result.boxes
            unit.quarantined, unit.generation = result.quarantined, generation
            report.quarantined += result.quarantined
            report.unit_s += result.seconds
            report.load_s += result.load_s
            report.add_dropped(result.dropped_objects)
            if result.unnamed_labels:
                report.unnamed_labels[unit.path] = dict(sorted(result.unnamed_labels.items()))
                report.warnings.append(unnamed_labels_message(result.unnamed_labels, unit.path))
        units_after = {k: u for k, u in old_units.items() if u not in removed_units}
        units_after.update({k: fresh[k] for k in results})
        change_name = f"g{generation:06d}"
        part_files.write_table(part_files.part_path(root, "changes", change_name), changes, "changes")
        committed = Manifest(generation=generation, committed_at=datetime.now(timezone.utc).isoformat(),
                             units=units_after, changes=manifest.changes + [change_name], index=change_name)
        write_index(root, change_name, pa.concat_tables([live, index_rows(root, new_parts)]))
        write_manifest(root, committed)
        report.frames = committed.frame_count()
        report.boxes = sum(u.boxes for u in units_after.values())
    if report.quarantined:
        report.warnings.append(f"{report.quarantined} frames of the parsed files are quarantined "
                               "(FrameCatalog.quarantined() lists each with its reason and file)")
    report.seconds = time.perf_counter() - started
    return report


def _resolve_duplicates(root: Path, live: pa.Table, new_parts: list[str], results: dict[str, UnitResult],
                        fresh: dict, old_units: dict, report: IngestReport) -> list[tuple[str, str, str]]:
    """Quarantine every second copy of a frame id; returns ``(frame_id, loser file, kept file)``."""
    unit_of_part = {p: fresh[k] for k, r in results.items() for p in r.parts}
    file_of_part = {p: u.path for u in old_units.values() for p in u.parts}
    file_of_part.update({p: u.path for p, u in unit_of_part.items()})
    losers = find_duplicates(live, index_rows(root, new_parts), file_of_part)
    found = []
    for part, dropped in sorted(losers.items()):
        unit = unit_of_part[part]
        frames, boxes = drop_rows(root, part, dropped, unit.path)
        result = results[unit.key]
        result.frames, result.boxes, result.quarantined = (result.frames - frames, result.boxes - boxes,
                                                           result.quarantined + frames)
        found += [(frame_id, unit.path, kept) for _, frame_id, kept in dropped]
    if not found:
        return []
    report.duplicates = len(found)
    report.add_examples("duplicate", sorted(f for f, _, _ in found))
    first = found[0]
    report.warnings.append(
        f"{len(found)} frame ids occur twice (e.g. {first[0]} in {first[1]} and {first[2]}): the copy already in "
        "the catalog (else the first file by path) is kept and the others are quarantined; give each dataset its "
        "own ids (mmdet3d: frame_id_prefix=) or remove the duplicated entries")
    return found


def _changes(root: Path, generation: int, affected_old: list[str], results: dict[str, UnitResult],
             report: IngestReport, duplicates: list) -> pa.Table:
    """Added / changed / removed frames of this ingest, as the changes-log table (a vectorised full join
    of the parsed units' frames before and after, by frame id)."""
    before = _ids_and_fingerprints(root, affected_old).rename_columns(["frame_id", "old_fingerprint", "other_file"])
    after = _ids_and_fingerprints(root, [p for r in results.values() for p in r.parts]).rename_columns(
        ["frame_id", "new_fingerprint", "source_file"])
    joined = after.join(before, "frame_id", join_type="full outer")
    old_fp, new_fp = joined.column("old_fingerprint"), joined.column("new_fingerprint")
    added, removed = pc.is_null(old_fp), pc.is_null(new_fp)
    changed = pc.and_(pc.and_(pc.invert(added), pc.invert(removed)), pc.not_equal(old_fp, new_fp))
    kind = pc.if_else(added, "added", pc.if_else(removed, "removed", pc.if_else(changed, "changed", None)))
    joined = joined.append_column("change", kind).filter(pc.is_valid(kind))
    removed_rows = pc.equal(joined.column("change"), "removed")
    table = pa.table({
        "generation": pa.array(np.full(joined.num_rows, generation), pa.int64()),
        "change": joined.column("change"),
        "frame_id": joined.column("frame_id"),
        "source_file": pc.if_else(removed_rows, joined.column("other_file"), joined.column("source_file")),
        "other_file": pc.if_else(pc.equal(joined.column("change"), "changed"), joined.column("other_file"),
                                 pa.scalar(None, pa.string())),
        "old_fingerprint": joined.column("old_fingerprint"),
        "new_fingerprint": joined.column("new_fingerprint"),
    }, schema=CHANGES_SCHEMA)
    if duplicates:
        table = pa.concat_tables([table, pa.table({
            "generation": [generation] * len(duplicates), "change": ["duplicate"] * len(duplicates),
            "frame_id": [d[0] for d in duplicates], "source_file": [d[1] for d in duplicates],
            "other_file": [d[2] for d in duplicates], "old_fingerprint": [None] * len(duplicates),
            "new_fingerprint": [None] * len(duplicates)}, schema=CHANGES_SCHEMA)])
    table = table.sort_by([("change", "ascending"), ("frame_id", "ascending")])
    for change in ("added", "changed", "removed"):
        ids = table.filter(pc.equal(table.column("change"), change)).column("frame_id")
        setattr(report, f"frames_{change}", len(ids))
        report.add_examples(change, ids.slice(0, 5).to_pylist())
    if report.frames_removed or report.frames_changed:
        examples = report.examples.get("removed", [])[:3] + report.examples.get("changed", [])[:3]
        report.warnings.append(
            f"{report.frames_removed} frames left the catalog (their source no longer holds them) and "
            f"{report.frames_changed} changed content (e.g. {', '.join(examples)}); both are listed in "
            "FrameCatalog.changes() with their fingerprints")
    return table


__all__ = ["CatalogBusy", "FRAMES_SCHEMA", "ingest"]
