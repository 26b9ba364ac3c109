"""``FrameCatalog``: the persisted, incremental, columnar catalog of every known frame.

Layout under ``root`` (see ``docs/ARCHITECTURE.md`` for why these encodings)::

    manifest.json              the commit: live parts, ingested source units (atomic, written last)
    frames/<part>.arrow        one row per frame, sorted by frame id (schema: catalog.schema; Arrow IPC)
    boxes/<part>.arrow         one row per box, the sibling of the frames part of the same name
    index/<gen>.arrow          (frame_id, part, row) of every live frame, sorted by id
    quarantine/<part>.parquet  frames the source could not read, with reason and file
    changes/<gen>.parquet      what each ingest added, changed, removed, or found duplicated

Example::

    catalog = FrameCatalog(".ceal/catalog")
    report = catalog.ingest("mmdet3d", "data/nuscenes", info=["nuscenes_infos_train.pkl"])
    records = catalog.records(["ca9a282c9e77460f8360f564131a8af5"])   # FrameRecords, boxes included
    pool = catalog.frame_ids(annotated=False)

One process ingests at a time (a lock file); any number read, each seeing the
last committed manifest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ceal_pipeline.catalog.ingest import ingest as _ingest
from ceal_pipeline.catalog.reads import CatalogReader
from ceal_pipeline.catalog.report import IngestReport
from ceal_pipeline.frames.records import FrameRecord, QuarantinedFrame


class FrameCatalog:
    """The frame catalog at ``root`` (created by the first ingest)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._reader: CatalogReader | None = None

    @property
    def _read(self) -> CatalogReader:
        if self._reader is None:
            self._reader = CatalogReader(self.root)
        return self._reader

    def ingest(self, kind: str, source_root: str | Path, *, check: str = "header", workers: int | None = None,
               progress=None, **options) -> IngestReport:
        """Bring the catalog up to date with a source; only new or changed units are parsed.

        ``kind``: ``"mmdet3d"`` (options ``info`` — one file or a list, default
        every ``*.pkl`` in ``source_root`` —, ``lidar_prefix``, ``camera_prefix``,
        ``box_frame``, ``box_origin_z``, ``camera_key``, ``frame_id_prefix``,
        ``classes``, ``extra_roots``), ``"aimotive"`` (sequence folders under ``source_root``) or
        ``"synthetic"`` (generator parameters such as ``n_frames``, ``seed``,
        ``overwrite``; the dataset is generated into ``source_root`` when missing).
        ``check``: ``"exists"``, ``"header"`` or ``"points"`` (as the readers).
        ``workers``: parser processes (default: one per CPU when several large
        units are to be parsed). ``progress(done, total)`` is called per unit.
        Raises ``CatalogBusy`` while another process ingests.
        """
        report = _ingest(self.root, kind, Path(source_root), check=check, workers=workers, progress=progress,
                         **options)
        if self._reader is not None:
            self._reader.refresh()
        return report

    def frame_count(self) -> int:
        """Live frames (quarantined ones not counted)."""
        return self._read.frame_count()

    def frame_ids(self, split: str | None = None, annotated: bool | None = None) -> np.ndarray:
        """Sorted ids of live frames; ``split`` and ``annotated`` (has source
        annotations, possibly 0 boxes) filter them."""
        return self._read.frame_ids(split=split, annotated=annotated)

    def records(self, frame_ids) -> list[FrameRecord]:
        """The :class:`FrameRecord` of each id in the given order, boxes from the boxes
        table; ``KeyError`` names ids the catalog does not hold and the fix."""
        return self._read.records(frame_ids)

    def sequence_ids(self, frame_ids) -> np.ndarray:
        """The sequence id of each frame id, in the given order."""
        return self._read.sequence_ids(frame_ids)

    def table(self, columns: list[str] | None = None, frame_ids=None) -> pa.Table:
        """Columns of the frames table (:data:`ceal_pipeline.catalog.schema.FRAMES_SCHEMA`),
        for every live frame or for ``frame_ids`` in the given order."""
        return self._read.table(columns, frame_ids)

    def quarantined(self) -> list[QuarantinedFrame]:
        """Frames of the live source units that could not be read, with reason and file."""
        return self._read.quarantined()

    def changes(self) -> pa.Table:
        """The changes log: one row per frame added, changed, removed or found
        duplicated, with the generation, source files and fingerprints."""
        return self._read.changes()

    def files(self, table: str = "frames") -> list[str]:
        """The live part files of ``table`` (``frames``, ``boxes``: Arrow IPC; ``quarantine``:
        Parquet). Never glob the folders: they may hold parts of a replaced or unfinished ingest."""
        return self._read.files(table)

    def dataset(self, table: str = "frames"):
        """The live parts of ``table`` as one ``pyarrow.dataset`` (projection and filter
        pushdown), which DuckDB queries in place::

            frames = catalog.dataset("frames")
            duckdb.sql("SELECT split, count(*) FROM frames GROUP BY split")
        """
        return self._read.dataset(table)

    def refresh(self) -> None:
        """See the latest committed ingest (another process may have ingested)."""
        self._read.refresh()
