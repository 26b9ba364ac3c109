"""Reads by frame id: only the parts, row groups and columns a lookup needs.

A lookup of ``k`` ids finds the part and row of each id in the frame-id index
(:mod:`.index`: at most ``k`` small batches of it), then decodes only the
record batches of the parts holding those rows and only the requested columns,
and the frames' boxes by their ``box_row`` range in the sibling boxes part
(:class:`.parts.Batches`: memory-mapped Arrow IPC files). Open files are kept
per reader, so a second lookup in the same process decodes only batches.

A reader serves one committed manifest; when an ingest has since replaced its
parts, the next call reloads the manifest (see :class:`CatalogReader.refresh`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ceal_pipeline.catalog import parts as part_files
from ceal_pipeline.catalog.index import FrameIndex
from ceal_pipeline.catalog.manifest import read_manifest
from ceal_pipeline.catalog.schema import (
    BOXES_SCHEMA,
    FRAMES_SCHEMA,
    QUARANTINE_SCHEMA,
    RECORD_COLUMNS,
    batch_from_tables,
)
from ceal_pipeline.frames.batch import offsets_of
from ceal_pipeline.frames.records import FrameRecord, QuarantinedFrame

#: Threads reading parts during one lookup (I/O and decoding release the GIL).
LOOKUP_THREADS = 4


def unknown_ids_error(unknown: list[str], root: Path) -> KeyError:
    shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
    return KeyError(f"{len(unknown)} frame ids ({shown}) are not in the frame catalog at {root}: they were never "
                    "ingested, were removed from their source (FrameCatalog.changes() lists removals) or are "
                    "quarantined (FrameCatalog.quarantined()); re-ingest the source, or drop these ids")


class _Part:
    """One live part: its frames and (when asked) boxes files, memory-mapped."""

    def __init__(self, root: Path, name: str):
        self.name = name
        self.frames = part_files.Batches(part_files.part_path(root, "frames", name), "frames")
        self._boxes: part_files.Batches | None = None
        self._root = root

    def rows(self, rows: np.ndarray, columns: list[str]) -> pa.Table:
        """``columns`` of ``rows`` (sorted, unique) reading only their record batches."""
        return self.frames.rows(rows, columns)

    def box_rows(self, rows: np.ndarray) -> pa.Table:
        if self._boxes is None:
            self._boxes = part_files.Batches(part_files.part_path(self._root, "boxes", self.name), "boxes")
        return self._boxes.rows(rows, list(BOXES_SCHEMA.names))


def _rows_in_order(read, rows: np.ndarray, *args) -> pa.Table:
    """``read(unique sorted rows, *args)`` expanded to ``rows`` (ascending, possibly repeated)."""
    unique_rows, inverse = np.unique(rows, return_inverse=True)
    table = read(unique_rows, *args)
    return table if len(unique_rows) == len(rows) else table.take(pa.array(inverse, pa.int64()))


class CatalogReader:
    """Reads of the catalog committed at ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.refresh()

    def refresh(self) -> None:
        """Load the latest committed manifest and forget cached footers and ids."""
        self.manifest = read_manifest(self.root)
        self._parts = {name: None for name in self.manifest.parts}
        self._index: FrameIndex | None = None

    def _part(self, name: str) -> _Part:
        if self._parts.get(name) is None:
            self._parts[name] = _Part(self.root, name)
        return self._parts[name]

    def _retrying(self, read):
        try:
            return read()
        except FileNotFoundError:
            # an ingest committed and collected the parts this reader knew; read the new ones
            self.refresh()
            return read()

    def files(self, table: str = "frames") -> list[str]:
        if table not in part_files.TABLES:
            raise ValueError(f"unknown catalog table {table!r}: use one of {part_files.TABLES}")
        return part_files.part_files(self.root, self.manifest.parts, table)

    def frame_count(self) -> int:
        return self.manifest.frame_count()

    def dataset(self, table: str = "frames"):
        files = self.files(table)
        schema = {"frames": FRAMES_SCHEMA, "boxes": BOXES_SCHEMA, "quarantine": QUARANTINE_SCHEMA}[table]
        return part_files.dataset(files, schema, table)

    def frame_ids(self, split: str | None = None, annotated: bool | None = None) -> np.ndarray:
        """Sorted ids of live frames, optionally of one ``split`` and/or (not) annotated."""
        def read():
            condition = None
            if split is not None:
                condition = pc.field("split") == split
            if annotated is not None:
                labeled = pc.field("labeled") == bool(annotated)
                condition = labeled if condition is None else condition & labeled
            if not self.manifest.index:
                return np.zeros(0, dtype=object)
            if condition is None:  # the index holds every live id, already sorted
                return np.asarray(FrameIndex(part_files.part_path(self.root, "index", self.manifest.index))
                                  .frame_ids().to_pylist(), dtype=object)
            ids = self.dataset().to_table(columns=["frame_id"], filter=condition).column(0)
            return np.sort(np.asarray(ids.to_pylist(), dtype=object)) if len(ids) else np.zeros(0, object)
        return self._retrying(read)

    def _locate(self, frame_ids: list[str]) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], list[str]]:
        """``[(part, positions in frame_ids, row of each in the part)]`` and the unknown ids."""
        if not self.manifest.index:  # nothing ingested yet
            return [], list(frame_ids)
        if self._index is None:
            self._index = FrameIndex(part_files.part_path(self.root, "index", self.manifest.index))
        found, part_of, rows = self._index.locate(frame_ids)
        by_part: dict[str, list[int]] = {}
        for i in np.flatnonzero(found):
            by_part.setdefault(part_of[i], []).append(i)
        located = []
        for name, positions in by_part.items():
            positions = np.asarray(positions)
            positions = positions[np.argsort(rows[positions], kind="stable")]  # each part read in row order
            located.append((name, positions, rows[positions]))
        return located, [frame_ids[i] for i in np.flatnonzero(~found)]

    def table(self, columns: list[str] | None = None, frame_ids=None) -> pa.Table:
        """``columns`` of the frames table (all when ``None``): every live frame
        when ``frame_ids`` is ``None``, else those frames in the given order
        (``KeyError`` naming unknown ids)."""
        columns = list(columns or FRAMES_SCHEMA.names)
        unknown_columns = sorted(set(columns) - set(FRAMES_SCHEMA.names))
        if unknown_columns:
            raise ValueError(f"unknown catalog column(s) {unknown_columns}; the frames table has "
                             f"{FRAMES_SCHEMA.names}")
        if frame_ids is None:
            return self._retrying(lambda: self.dataset().to_table(columns=columns))
        return self._retrying(lambda: self._by_id(list(frame_ids), columns)[0])

    def _by_id(self, frame_ids: list[str], columns: list[str]) -> tuple[pa.Table, np.ndarray]:
        """``columns`` of ``frame_ids`` in that order, and the part each came from."""
        located, unknown = self._locate(frame_ids)
        if unknown:
            raise unknown_ids_error(unknown, self.root)
        part_of = np.empty(len(frame_ids), dtype=object)
        if not located:
            return FRAMES_SCHEMA.empty_table().select(columns), part_of
        pieces, order = [], []
        for name, positions, rows in located:
            unique_rows, inverse = np.unique(rows, return_inverse=True)
            pieces.append(self._part(name).rows(unique_rows, columns).take(pa.array(inverse, pa.int64())))
            order.append(positions)
            part_of[positions] = name
        inverse = np.empty(len(frame_ids), dtype=np.int64)
        inverse[np.concatenate(order)] = np.arange(len(frame_ids))
        return pa.concat_tables(pieces).take(pa.array(inverse, pa.int64())), part_of

    def records(self, frame_ids) -> list[FrameRecord]:
        """The :class:`FrameRecord` of each id, in the given order, boxes included
        (``KeyError`` naming unknown ids)."""
        frame_ids = list(frame_ids)
        if not frame_ids:
            return []

        def read():
            located, unknown = self._locate(frame_ids)
            if unknown:
                raise unknown_ids_error(unknown, self.root)
            # parts are independent files: read them on a few threads (pyarrow decodes without the GIL)
            if LOOKUP_THREADS > 1 and len(located) > 1:
                with ThreadPoolExecutor(max_workers=min(LOOKUP_THREADS, len(located))) as pool:
                    pieces = list(pool.map(lambda item: self._part_records(*item), located))
            else:
                pieces = [self._part_records(*item) for item in located]
            frames = pa.concat_tables([f for f, _ in pieces])
            boxes = pa.concat_tables([b for _, b in pieces])
            # records in part order, then placed at their positions (cheaper than reordering nested columns)
            out: list = [None] * len(frame_ids)
            order = np.concatenate([positions for _, positions, _ in located])
            for position, record in zip(order.tolist(), batch_from_tables(frames, boxes).records()):
                out[position] = record
            return out
        return self._retrying(read)

    def _part_records(self, name: str, positions: np.ndarray, rows: np.ndarray) -> tuple[pa.Table, pa.Table]:
        """Frame rows ``rows`` (ascending) of one part and their box rows, both in that order."""
        part = self._part(name)
        frames = _rows_in_order(part.rows, rows, list(RECORD_COLUMNS))
        starts = frames.column("box_row").to_numpy().astype(np.int64)
        counts = frames.column("box_count").to_numpy().astype(np.int64)
        total = int(counts.sum())
        if not total:
            return frames, BOXES_SCHEMA.empty_table()
        # every frame's box rows, in frame order: starts[i] .. starts[i] + counts[i]
        box_rows = np.repeat(starts - offsets_of(counts)[:-1], counts) + np.arange(total)
        return frames, _rows_in_order(part.box_rows, box_rows)

    def sequence_ids(self, frame_ids) -> np.ndarray:
        """The sequence of each id, in the given order."""
        table = self.table(["sequence_id"], frame_ids)
        return np.asarray(table.column(0).to_pylist(), dtype=object)

    def quarantined(self) -> list[QuarantinedFrame]:
        def read():
            table = self.dataset("quarantine").to_table()
            return [QuarantinedFrame(frame_id=r["frame_id"], reason=r["reason"], path=r["path"], source=r["source"])
                    for r in table.to_pylist()]
        return self._retrying(read)

    def changes(self) -> pa.Table:
        files = part_files.part_files(self.root, self.manifest.changes, "changes")
        return pa.concat_tables([part_files.read_table(f) for f in files]) if files else pa.table({})
