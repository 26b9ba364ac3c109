"""The frame-id index: where each live frame's row is, sorted globally by frame id.

Parts are sorted by frame id within themselves, but every part of uniformly
distributed ids (nuScenes tokens, UUIDs) spans the whole key range, so a
part's row-group statistics cannot exclude it. ``index/<generation>.parquet``
holds ``(frame_id, part, row)`` for every live frame, sorted by frame id in
small row groups: a lookup of ``k`` ids reads at most ``k`` of its row groups
(found from the footer's min/max statistics) instead of the ``frame_id`` column
of every part.

The index is derived state: rebuilt from the live parts at every commit and
listed in the manifest next to them, so it can never describe other parts than
the ones the manifest names.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ceal_pipeline.catalog import parts as part_files

INDEX_SCHEMA = pa.schema([("frame_id", pa.string()), ("part", pa.string()), ("row", pa.int32())])


def write_index(root: Path, name: str, parts: list[str]) -> None:
    """Build ``index/<name>.parquet`` from the ``frame_id`` columns of ``parts``."""
    tables = []
    for part in parts:
        ids = pq.read_table(part_files.part_path(root, "frames", part), columns=["frame_id"]).column(0)
        tables.append(pa.table({"frame_id": ids, "part": pa.array([part] * len(ids), pa.string()),
                                "row": pa.array(np.arange(len(ids), dtype=np.int32))}, schema=INDEX_SCHEMA))
    table = pa.concat_tables(tables) if tables else INDEX_SCHEMA.empty_table()
    part_files.write_table(part_files.part_path(root, "index", name), table.sort_by("frame_id"), "index")


class FrameIndex:
    """Lookups in one index file (its footer is read once)."""

    def __init__(self, path: Path):
        self.file = pq.ParquetFile(path)
        metadata = self.file.metadata
        column = self.file.schema_arrow.get_field_index("frame_id")
        self.mins, self.maxs = [], []
        for g in range(metadata.num_row_groups):
            stats = metadata.row_group(g).column(column).statistics
            self.mins.append(stats.min)
            self.maxs.append(stats.max)

    def locate(self, frame_ids: list[str]) -> tuple[np.ndarray, list, np.ndarray]:
        """``(found, part per id, row per id)``; reads only the row groups whose id range holds a wanted id."""
        groups = set()
        for frame_id in frame_ids:
            g = bisect.bisect_right(self.mins, frame_id) - 1
            if g >= 0 and frame_id <= self.maxs[g]:
                groups.add(g)
        found = np.zeros(len(frame_ids), dtype=bool)
        part_of, rows = [None] * len(frame_ids), np.zeros(len(frame_ids), dtype=np.int64)
        if not groups:
            return found, part_of, rows
        table = self.file.read_row_groups(sorted(groups), columns=["frame_id", "part", "row"])
        index = pc.index_in(pa.array(frame_ids, pa.string()), value_set=table.column("frame_id"))
        found = index.is_valid().to_numpy(zero_copy_only=False)
        at = index.fill_null(0).to_numpy(zero_copy_only=False)
        parts = table.column("part").to_pylist()
        table_rows = table.column("row").to_numpy()
        for i in np.flatnonzero(found):
            part_of[i] = parts[at[i]]
            rows[i] = table_rows[at[i]]
        return found, part_of, rows

    def frame_ids(self) -> pa.Array:
        """Every live frame id, sorted."""
        return self.file.read(columns=["frame_id"]).column(0)
