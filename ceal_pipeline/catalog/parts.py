"""Part files: where each table's rows live under the catalog root.

``frames/<part>.parquet``, ``boxes/<part>.parquet`` and
``quarantine/<part>.parquet`` share one part name per slice of a source unit;
``changes/<generation>.parquet`` holds each ingest's change log and
``index/<generation>.parquet`` the frame-id index (:mod:`.index`). Every part is
sorted by frame id and written atomically; row groups are small so that a
lookup by id decodes little beyond the rows it wants. Decoding the frames
table's camera column costs in proportion to the rows of a group, while every
group adds to the footers a lookup parses: 128 frames and 2048 boxes (~50
frames) per group measured best at 10^6 frames.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ceal_pipeline.atomic_files import atomic_target

TABLES = ("frames", "boxes", "quarantine")
#: Rows per row group of the frames and boxes tables (boxes: ~40 per frame).
ROW_GROUP_ROWS = {"frames": 128, "boxes": 2048, "quarantine": 65536, "changes": 65536, "index": 1024}


def part_path(root: Path, table: str, part: str) -> Path:
    return Path(root) / table / f"{part}.parquet"


#: Columns worth dictionary-encoding (few distinct values); trying it on float columns costs a third of a write.
DICTIONARY_COLUMNS = ("split", "source_kind", "source", "source_file", "lidar_format", "sequence_id",
                      "cameras.list.element.name", "cameras.list.element.model", "class_name", "label", "change",
                      "reason", "path")


def write_table(path: Path, table: pa.Table, kind: str) -> None:
    """``table`` to ``path`` (zstd, statistics on ``frame_id`` only, atomic). Box rows
    repeat their frame's id ~40 times, so the boxes table dictionary-encodes it."""
    dictionary = list(DICTIONARY_COLUMNS) + (["frame_id"] if kind == "boxes" else [])
    with atomic_target(path) as tmp:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS[kind], compression="zstd",
                       use_dictionary=dictionary,
                       write_statistics=["frame_id"] if "frame_id" in table.column_names else False)


def part_files(root: Path, parts: list[str], table: str = "frames") -> list[str]:
    return [str(part_path(root, table, p)) for p in parts]
