"""The frame-id index: where each live frame's row is, sorted globally by frame id.

Parts are sorted by frame id within themselves, but every part of uniformly
distributed ids (nuScenes tokens, UUIDs) spans the whole key range, so a
part's statistics cannot exclude it. ``index/<generation>.arrow`` holds
``(frame_id, part, row)`` for every live frame, sorted by frame id in small
record batches, and the first id of each batch in its schema metadata: a
lookup of ``k`` ids decodes at most ``k`` of its batches instead of the
``frame_id`` column of every part.

The index is derived state, rewritten at every commit from the previous index
(minus the rows of replaced parts) and the new parts, and listed in the
manifest next to them, so it never describes other parts than the ones the
manifest names. It also serves the ingest's duplicate-id check.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ceal_pipeline.catalog import parts as part_files

GROUP_MINS_KEY = "ceal.row_group_min_frame_ids"
INDEX_SCHEMA = pa.schema([("frame_id", pa.string()), ("part", pa.string()), ("row", pa.int32())])


def index_rows(root: Path, parts: list[str]) -> pa.Table:
    """``(frame_id, part, row)`` of every frame of ``parts``, part by part."""
    tables = []
    for part in parts:
        ids = part_files.read_table(part_files.part_path(root, "frames", part), columns=["frame_id"]).column(0)
        tables.append(pa.table({"frame_id": ids, "part": pa.array([part] * len(ids), pa.string()),
                                "row": pa.array(np.arange(len(ids), dtype=np.int32))}, schema=INDEX_SCHEMA))
    return pa.concat_tables(tables) if tables else INDEX_SCHEMA.empty_table()


def read_index(root: Path, name: str) -> pa.Table:
    """The rows of a committed index (empty for ``""``)."""
    if not name:
        return INDEX_SCHEMA.empty_table()
    return part_files.read_table(part_files.part_path(root, "index", name)).replace_schema_metadata(None)


def write_index(root: Path, name: str, rows: pa.Table) -> None:
    """Sort ``rows`` by frame id and write them as ``index/<name>.arrow``."""
    table = rows.sort_by("frame_id")
    # the first id of every batch, so that a lookup finds its batches by bisection
    step = part_files.ROW_GROUP_ROWS["index"]
    mins = table.column("frame_id").take(pa.array(np.arange(0, table.num_rows, step))).to_pylist()
    table = table.replace_schema_metadata({GROUP_MINS_KEY: json.dumps(mins)})
    part_files.write_table(part_files.part_path(root, "index", name), table, "index")


class FrameIndex:
    """Lookups in one index file (its footer is read once)."""

    def __init__(self, path: Path):
        self.file = part_files.Batches(path, "index")
        self.mins = json.loads(self.file.schema.metadata[GROUP_MINS_KEY.encode()])

    def locate(self, frame_ids: list[str]) -> tuple[np.ndarray, list, np.ndarray]:
        """``(found, part per id, row per id)``; reads only the batches whose id range holds a wanted id."""
        groups = {bisect.bisect_right(self.mins, frame_id) - 1 for frame_id in frame_ids} - {-1}
        found = np.zeros(len(frame_ids), dtype=bool)
        part_of, rows = [None] * len(frame_ids), np.zeros(len(frame_ids), dtype=np.int64)
        if not groups:
            return found, part_of, rows
        table = self.file.read(sorted(groups), columns=["frame_id", "part", "row"])
        # probe the (up to k x 1024) index ids against the k wanted ones, not the other way round
        table = table.filter(pc.is_in(table.column("frame_id"), value_set=pa.array(frame_ids, pa.string())))
        where = {frame_id: i for i, frame_id in enumerate(table.column("frame_id").to_pylist())}
        parts, index_rows_ = table.column("part").to_pylist(), table.column("row").to_numpy()
        for i, frame_id in enumerate(frame_ids):
            hit = where.get(frame_id)
            if hit is not None:
                found[i], part_of[i], rows[i] = True, parts[hit], index_rows_[hit]
        return found, part_of, rows

    def frame_ids(self) -> pa.Array:
        """Every live frame id, sorted."""
        return self.file.read(range(self.file.num_batches), columns=["frame_id"]).column(0)
