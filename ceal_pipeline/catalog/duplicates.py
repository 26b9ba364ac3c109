"""Frame ids held twice: found against the index, resolved by quarantining the later copy.

A frame id must name one frame. When an ingest brings an id that the live
catalog already holds (another source file, or a file ingested before), or
that two of the parsed files (or one file twice) hold, the copy that was
already live is kept, else the first one in unit-path and row order. The others
are removed from their parts and quarantined with a reason naming both files;
the caller reports them loudly and logs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ceal_pipeline.catalog import parts as part_files
from ceal_pipeline.catalog.schema import batch_from_tables, boxes_table, frames_table, quarantine_table
from ceal_pipeline.frames.records import QuarantinedFrame


def find_duplicates(live: pa.Table, new: pa.Table, file_of_part: dict[str, str]) -> dict[str, list]:
    """Rows of ``new`` (index rows of the parsed parts, in unit order) to drop:
    ``{part: [(row, frame_id, kept_file)]}``. ``live`` are the index rows kept from before."""
    ids = new.column("frame_id")
    # hash the few new ids and probe the many live ones, not the other way round
    live_hits = live.filter(pc.is_in(live.column("frame_id"), value_set=ids))
    against_live = pc.is_in(ids, value_set=live_hits.column("frame_id")).to_numpy(zero_copy_only=False)
    counts = new.group_by("frame_id").aggregate([("frame_id", "count")])
    repeated = counts.filter(pc.greater(counts.column("frame_id_count"), 1)).column("frame_id")
    within = pc.is_in(ids, value_set=repeated).to_numpy(zero_copy_only=False)
    suspects = np.flatnonzero(against_live | within)
    if not len(suspects):
        return {}
    live_part = {}
    if against_live.any():
        live_part = dict(zip(live_hits.column("frame_id").to_pylist(), live_hits.column("part").to_pylist()))
    rows = new.take(pa.array(suspects)).to_pylist()
    kept_in: dict[str, str] = {}
    losers: dict[str, list] = {}
    for row in rows:
        frame_id = row["frame_id"]
        if frame_id in live_part:
            kept = file_of_part[live_part[frame_id]]
        elif frame_id not in kept_in:
            kept_in[frame_id] = file_of_part[row["part"]]  # the first copy in unit order wins
            continue
        else:
            kept = kept_in[frame_id]
        losers.setdefault(row["part"], []).append((row["row"], frame_id, kept))
    return losers


def drop_rows(root: Path, name: str, dropped: list[tuple[int, str, str]], unit_path: str) -> tuple[int, int]:
    """Rewrite part ``name`` without the rows ``dropped`` and quarantine them; returns ``(frames, boxes)`` removed."""
    frames = part_files.read_table(part_files.part_path(root, "frames", name))
    boxes = part_files.read_table(part_files.part_path(root, "boxes", name))
    batch = batch_from_tables(frames, boxes)
    keep = np.ones(len(batch), dtype=bool)
    keep[[row for row, _, _ in dropped]] = False
    kept = batch.take(np.flatnonzero(keep))
    fingerprints = np.array(frames.column("fingerprint").to_pylist(), dtype=object)[keep]
    source_kind = frames.column("source_kind")[0].as_py()
    part_files.write_table(part_files.part_path(root, "frames", name),
                           frames_table(kept, fingerprints, source_kind=source_kind, source_file=unit_path),
                           "frames")
    part_files.write_table(part_files.part_path(root, "boxes", name), boxes_table(kept), "boxes")
    quarantine_path = part_files.part_path(root, "quarantine", name)
    extra = [QuarantinedFrame(frame_id=f, reason=f"duplicate frame id {f}: {unit_path} holds it and so does "
                                                 f"{kept_file}, whose copy is kept; give each dataset its own ids "
                                                 "(frame_id_prefix=) or remove one entry",
                              path=unit_path, source=source_kind) for _, f, kept_file in dropped]
    table = pa.concat_tables([part_files.read_table(quarantine_path), quarantine_table(extra, unit_path)])
    part_files.write_table(quarantine_path, table.sort_by("frame_id"), "quarantine")
    return len(dropped), int(frames.column("box_count").to_numpy()[~keep].sum())
