"""The files the candidate pool step, the GPU scoring shards and the merge exchange.

The acquisition history (DuckDB) is the single store of round state: a round's
candidate pool and its shard split, the shards ingested, the selection and the
export. GPU workers never open it (DuckDB has one writer, and workers may run
on other machines against shared or object storage), so the exchange holds
only what crosses that boundary, each file written once and atomically::

    <shard_dir>/round-0003/pool.parquet   frame_id, shard: the round's pool as saved in
                                          the history, published by candidate_pool for
                                          the workers (key-value metadata: round,
                                          n_shards, frames, model_version and the
                                          round's recorded parameters)
    <shard_dir>/round-0003/s007.parquet   shard 7's score events, written by its worker
                                          (core.history.shards; metadata: forward_passes,
                                          scoring_s): its commit marker; its explanation
                                          columns say why each frame scored what it did

``pool.parquet`` is derived from the history and never edited: when it is
missing (a kill between the history's commit and the publish) the pool step
publishes it again from the history. A shard is scored when its Parquet file
exists and names the round's detector; the merge then checks every row against
the history's pool before anything is ingested.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ceal_pipeline.atomic_files import atomic_target, remove_stale_temporaries
from ceal_pipeline.defs.acquisition.partitions import shard_partition_key

#: Parquet key-value metadata key under which the exchange files carry their facts.
METADATA_KEY = b"ceal"


class ExchangeFileError(RuntimeError):
    """An exchange file that cannot be read; the message names the file and the fix."""


@dataclass(frozen=True)
class PublishedPool:
    """What ``pool.parquet`` says about a round's candidate pool."""

    round_index: int
    n_shards: int
    frames: int
    model_version: str
    #: the round's parameters as recorded in the history when it opened (MC passes, acquisition
    #: function, ...): the workers score with these without opening the history
    parameters: dict = field(default_factory=dict)

    @property
    def partition_keys(self) -> list[str]:
        return [shard_partition_key(self.round_index, s) for s in range(self.n_shards)]


@dataclass(frozen=True)
class ShardStats:
    """What scoring one shard cost, read from its Parquet file's metadata."""

    round_index: int
    shard_index: int
    model_version: str
    frames: int
    forward_passes: int
    scoring_s: float


def _read_facts(path: Path, what: str, fix: str) -> dict:
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) for a corrupt footer
        raise ExchangeFileError(f"{what} {path} cannot be read as Parquet ({exc}); {fix}") from exc
    raw = (metadata.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ExchangeFileError(f"{what} {path} carries no '{METADATA_KEY.decode()}' metadata; {fix}")
    try:
        facts = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ExchangeFileError(f"{what} {path}: its '{METADATA_KEY.decode()}' metadata is not JSON ({exc}); {fix}")
    if not isinstance(facts, dict):
        raise ExchangeFileError(f"{what} {path}: its metadata is {type(facts).__name__}, not an object; {fix}")
    facts["rows"] = metadata.num_rows
    return facts


def _write_table(path: Path, table) -> None:
    import pyarrow.parquet as pq

    with atomic_target(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


class ShardExchange:
    """Reads and writes the round folders under ``root`` (see module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def round_dir(self, round_index: int) -> Path:
        return self.root / f"round-{round_index:04d}"

    def pool_path(self, round_index: int) -> Path:
        return self.round_dir(round_index) / "pool.parquet"

    def scores_path(self, round_index: int, shard_index: int) -> Path:
        return self.round_dir(round_index) / f"s{shard_index:03d}.parquet"

    # -- the published candidate pool -----------------------------------------
    def publish_pool(
        self, round_index: int, frame_ids: np.ndarray, shards: np.ndarray, n_shards: int, model_version: str,
        parameters: dict | None = None,
    ) -> PublishedPool:
        """Publish the history's pool of ``round_index`` and the round's parameters for the workers (atomically)."""
        import pyarrow as pa

        facts = {"round": round_index, "n_shards": int(n_shards), "frames": len(frame_ids),
                 "model_version": model_version, "parameters": dict(parameters or {})}
        table = pa.table({"frame_id": pa.array([str(f) for f in frame_ids], pa.string()),
                          "shard": pa.array(np.asarray(shards, dtype=np.int32))})
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(facts).encode()})
        remove_stale_temporaries(self.round_dir(round_index))  # left by a killed publication or shard
        _write_table(self.pool_path(round_index), table)
        return PublishedPool(round_index, int(n_shards), len(frame_ids), model_version, facts["parameters"])

    def published_pool(self, round_index: int) -> PublishedPool | None:
        """The round's published pool, or None before candidate_pool published it."""
        path = self.pool_path(round_index)
        if not path.is_file():
            return None
        facts = _read_facts(path, "candidate pool", f"re-materialize candidate_pool for round {round_index}")
        return PublishedPool(int(facts["round"]), int(facts["n_shards"]), int(facts["frames"]),
                             str(facts["model_version"]), dict(facts.get("parameters") or {}))

    def shard_frames(self, round_index: int, shard_index: int) -> list[str]:
        """Frame ids of one shard, in pool order: only that shard's rows are read (predicate pushdown)."""
        import pyarrow.parquet as pq

        path = self.pool_path(round_index)
        if not path.is_file():
            raise ExchangeFileError(
                f"{path}: round {round_index} has no published candidate pool, so shard "
                f"{shard_partition_key(round_index, shard_index)} has no frames; materialize candidate_pool "
                f"for partition r{round_index:04d} first"
            )
        table = pq.read_table(path, columns=["frame_id"], filters=[("shard", "=", shard_index)])
        return table.column("frame_id").to_pylist()

    # -- scored shards ---------------------------------------------------------
    def shard_stats(self, round_index: int, shard_index: int) -> ShardStats | None:
        """The stats of a scored shard, or None while its Parquet file does not exist."""
        path = self.scores_path(round_index, shard_index)
        if not path.is_file():
            return None
        facts = _read_facts(
            path, "score shard",
            f"delete it and re-materialize candidate_scores partition {shard_partition_key(round_index, shard_index)}",
        )
        return ShardStats(round_index, shard_index, str(facts.get("model_version", "")), int(facts["rows"]),
                          int(facts.get("forward_passes", 0)), float(facts.get("scoring_s", 0.0)))

    def unscored_shards(self, pool: PublishedPool) -> list[int]:
        """Shards of the published pool without a score file from the round's detector."""
        missing = []
        remove_stale_temporaries(self.round_dir(pool.round_index))  # a killed scorer's .sNNN.parquet.PID.tmp
        for shard_index in range(pool.n_shards):
            stats = self.shard_stats(pool.round_index, shard_index)
            if stats is None or stats.model_version != pool.model_version:
                missing.append(shard_index)
        return missing

    def round_stats(self, pool: PublishedPool) -> list[ShardStats]:
        return [s for i in range(pool.n_shards) if (s := self.shard_stats(pool.round_index, i)) is not None]

    def score_paths(self, round_index: int, shards: Sequence[int]) -> dict[int, Path]:
        return {s: self.scores_path(round_index, s) for s in shards}

    def explanations(self, round_index: int, frame_ids: Sequence[str]) -> dict:
        """Why each of ``frame_ids`` scored what it did this round: frame id ->
        :class:`~ceal_pipeline.core.frame_explanation.FrameExplanation`, read from the
        score shards that hold them (only those shards, only those rows). Frames whose
        shard carries no explanation (or is missing) are left out."""
        from ceal_pipeline.core.history.shards import read_shard_explanations

        return self._read_by_shard(round_index, frame_ids, read_shard_explanations)

    def embeddings(self, round_index: int, frame_ids: Sequence[str]) -> dict:
        """Frame id -> its float16 embedding (pooled BEV features of the scoring pass) for those
        of ``frame_ids`` whose shard carries one (:func:`~ceal_pipeline.core.history.shards.read_shard_embeddings`)."""
        from ceal_pipeline.core.history.shards import read_shard_embeddings

        return self._read_by_shard(round_index, frame_ids, read_shard_embeddings)

    def _read_by_shard(self, round_index: int, frame_ids: Sequence[str], read) -> dict:
        """``read(shard path, ids)`` merged over the round's shards that hold ``frame_ids``
        (only those shards, only those rows)."""
        import pyarrow.parquet as pq

        wanted = [str(f) for f in frame_ids]
        path = self.pool_path(round_index)
        if not wanted or not path.is_file():
            return {}
        rows = pq.read_table(path, columns=["frame_id", "shard"], filters=[("frame_id", "in", wanted)])
        by_shard: dict[int, list[str]] = {}
        for frame_id, shard in zip(rows.column("frame_id").to_pylist(), rows.column("shard").to_pylist()):
            by_shard.setdefault(int(shard), []).append(frame_id)
        found = {}
        for shard, ids in sorted(by_shard.items()):
            shard_path = self.scores_path(round_index, shard)
            if shard_path.is_file():
                found.update(read(shard_path, ids))
        return found
