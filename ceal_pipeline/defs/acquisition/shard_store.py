"""The file layout shared by the candidate pool, the GPU scoring shards and the merge.

GPU workers never open the DuckDB history (it has a single writer); they read
their shard's frame list from a file and write one Parquet file. The merge step,
the only writer, ingests those files. On one machine this folder is local; on
many it is shared or object storage. Layout::

    <shard_dir>/round-0003/pool.json          the round's candidate pool manifest
    <shard_dir>/round-0003/s007.frames.txt    shard 7's frame ids, one a line
    <shard_dir>/round-0003/s007.parquet       shard 7's score events (its commit marker)
    <shard_dir>/round-0003/s007.stats.json    frames, forward passes, seconds, model version

Every file is written to a temporary name and renamed into place, so a killed
process leaves either the complete file or nothing. A shard counts as scored
when its Parquet file exists and its stats name the model version in use; a
round is complete when all its shards are scored.

Dagster partition keys name a (round, shard) pair as ``r0003-s007``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_PARTITION_KEY = re.compile(r"^r(\d{4,})-s(\d{3,})$")


def shard_partition_key(round_index: int, shard_index: int) -> str:
    """``r0003-s007``: the candidate_scores partition key of a shard."""
    return f"r{round_index:04d}-s{shard_index:03d}"


def parse_shard_partition_key(key: str) -> tuple[int, int]:
    """``"r0003-s007"`` -> ``(3, 7)``; a clear error for anything else."""
    match = _PARTITION_KEY.match(key)
    if not match:
        raise ValueError(f"partition key {key!r} is not a candidate shard key like 'r0003-s007'")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class ShardStats:
    """What scoring one shard cost, and with which model."""

    round_index: int
    shard_index: int
    model_version: str
    frames: int
    forward_passes: int
    scoring_s: float
    run_id: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ShardStore:
    """Reads and writes the round folders under ``root`` (see module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- layout ---------------------------------------------------------------
    def round_dir(self, round_index: int) -> Path:
        return self.root / f"round-{round_index:04d}"

    def pool_manifest_path(self, round_index: int) -> Path:
        return self.round_dir(round_index) / "pool.json"

    def frames_path(self, round_index: int, shard_index: int) -> Path:
        return self.round_dir(round_index) / f"s{shard_index:03d}.frames.txt"

    def scores_path(self, round_index: int, shard_index: int) -> Path:
        return self.round_dir(round_index) / f"s{shard_index:03d}.parquet"

    def stats_path(self, round_index: int, shard_index: int) -> Path:
        return self.round_dir(round_index) / f"s{shard_index:03d}.stats.json"

    # -- the candidate pool ---------------------------------------------------
    def write_pool(self, round_index: int, shards: Sequence[Sequence[str]], parameters: dict) -> dict:
        """Write the shard frame lists, then the manifest (last: it marks the pool as complete)."""
        for shard_index, frame_ids in enumerate(shards):
            atomic_write_bytes(self.frames_path(round_index, shard_index), "".join(f + "\n" for f in frame_ids).encode())
        manifest = {
            "round": round_index,
            "shards": len(shards),
            "frames": int(sum(len(s) for s in shards)),
            "shard_sizes": [len(s) for s in shards],
            "partition_keys": [shard_partition_key(round_index, i) for i in range(len(shards))],
            **parameters,
        }
        atomic_write_bytes(self.pool_manifest_path(round_index), (json.dumps(manifest, indent=2) + "\n").encode())
        return manifest

    def pool_manifest(self, round_index: int) -> dict | None:
        """The round's pool manifest, or None when no pool was drawn for it."""
        path = self.pool_manifest_path(round_index)
        return json.loads(path.read_text()) if path.is_file() else None

    def require_pool(self, round_index: int) -> dict:
        manifest = self.pool_manifest(round_index)
        if manifest is None:
            raise FileNotFoundError(
                f"{self.pool_manifest_path(round_index)}: round {round_index} has no candidate pool; "
                "materialize candidate_pool (job nightly_acquisition) first"
            )
        return manifest

    def shard_frames(self, round_index: int, shard_index: int) -> list[str]:
        path = self.frames_path(round_index, shard_index)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: shard {shard_partition_key(round_index, shard_index)} has no frame list; "
                "the partition does not belong to a drawn candidate pool (re-materialize candidate_pool)"
            )
        return [line for line in path.read_text().splitlines() if line]

    def pool_frames(self, round_index: int) -> list[str]:
        manifest = self.require_pool(round_index)
        return [f for s in range(manifest["shards"]) for f in self.shard_frames(round_index, s)]

    def rounds(self) -> list[int]:
        """Rounds with a complete pool manifest, ascending."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.glob("round-[0-9]*"):
            if (path / "pool.json").is_file():
                found.append(int(path.name.split("-", 1)[1]))
        return sorted(found)

    # -- scored shards --------------------------------------------------------
    def write_stats(self, stats: ShardStats) -> None:
        atomic_write_bytes(
            self.stats_path(stats.round_index, stats.shard_index), (json.dumps(stats.to_dict()) + "\n").encode()
        )

    def stats(self, round_index: int, shard_index: int) -> ShardStats | None:
        path = self.stats_path(round_index, shard_index)
        if not path.is_file() or not self.scores_path(round_index, shard_index).is_file():
            return None
        return ShardStats(**json.loads(path.read_text()))

    def missing_shards(self, round_index: int, model_version: str | None = None) -> list[int]:
        """Shards of the round not yet scored (by ``model_version`` when given)."""
        manifest = self.require_pool(round_index)
        missing = []
        for shard_index in range(manifest["shards"]):
            stats = self.stats(round_index, shard_index)
            if stats is None or (model_version is not None and stats.model_version != model_version):
                missing.append(shard_index)
        return missing

    def round_stats(self, round_index: int) -> list[ShardStats]:
        manifest = self.require_pool(round_index)
        return [s for i in range(manifest["shards"]) if (s := self.stats(round_index, i)) is not None]
