"""The Parquet score shard: what a scoring worker writes and the merge ingests.

Each ``candidate_scores`` partition scores one shard of the candidate pool and
writes one Parquet file with one row per frame:

=============== ========= ==============================================
column          type      meaning
=============== ========= ==============================================
frame_id        VARCHAR   the scored frame
score           DOUBLE    acquisition value (finite; nats for entropies)
round           INTEGER   acquisition round (same on every row)
shard           INTEGER   shard of the round's candidate pool (same)
model_version   VARCHAR   detector checkpoint that produced the score (same)
acquisition_fn  VARCHAR   e.g. ``localization_entropy`` (same)
run_id          VARCHAR   the Dagster run that scored it (same)
scored_at       TIMESTAMP UTC time the shard was scored (same)
=============== ========= ==============================================

Workers need no access to the history database (they may run on other machines
and write to shared storage); the single merge step ingests the files. The file
is written to a temporary name and renamed, so a killed worker never leaves a
truncated shard under the final name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from ceal_pipeline.atomic_files import atomic_target
from ceal_pipeline.core.history.connection import utc_now
from ceal_pipeline.core.history.errors import ShardFileError
from ceal_pipeline.core.history.staging import (
    as_frame_id_array,
    as_score_array,
    require_finite,
    require_index,
    require_unique,
    stage,
)

#: Column name -> DuckDB type of a score shard.
SHARD_COLUMNS: dict[str, str] = {
    "frame_id": "VARCHAR",
    "score": "DOUBLE",
    "round": "INTEGER",
    "shard": "INTEGER",
    "model_version": "VARCHAR",
    "acquisition_fn": "VARCHAR",
    "run_id": "VARCHAR",
    "scored_at": "TIMESTAMP",
}

#: Columns that must hold one value for the whole shard.
SHARD_CONSTANTS: tuple[str, ...] = ("round", "shard", "model_version", "acquisition_fn", "run_id", "scored_at")


def write_score_shard(
    path: str | os.PathLike[str],
    frame_ids: Sequence[str] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    *,
    round: int,
    shard: int,
    model_version: str,
    acquisition_fn: str,
    run_id: str,
    scored_at: datetime | None = None,
    facts: Mapping[str, Any] | None = None,
) -> Path:
    """Write one score shard as Parquet (zstd) at ``path``, atomically.

    Args:
        path: destination file; its folder is created.
        frame_ids, scores: one finite score per frame, each frame once.
        round, shard: the candidate-pool shard these scores are for.
        model_version, acquisition_fn, run_id: provenance stamped on every row.
        scored_at: naive UTC time (default: now).
        facts: JSON-serialisable facts about the shard (e.g. forward passes and
            seconds of scoring) kept in the file's Parquet key-value metadata
            under ``ceal`` with round, shard and model version, so that a reader
            learns them from the footer without scanning rows.

    Returns:
        The path written.

    Raises:
        InvalidScores, DuplicateFrames: nothing is written.
    """
    what = f"score shard {path} (round {round}, shard {shard})"
    round, shard = require_index(round, "round", what), require_index(shard, "shard", what)
    ids = as_frame_id_array(frame_ids, what)
    values = as_score_array(scores, len(ids), what)
    require_finite(ids, values, what)
    path = Path(path)
    con = duckdb.connect()
    try:
        stage(con, "shard_rows", {"frame_id": ids, "score": values})
        require_unique(con, "shard_rows", what)
        con.execute(
            """
            CREATE TEMP TABLE shard_out AS
            SELECT frame_id, score, ?::INTEGER AS round, ?::INTEGER AS shard, ?::VARCHAR AS model_version,
                   ?::VARCHAR AS acquisition_fn, ?::VARCHAR AS run_id, ?::TIMESTAMP AS scored_at
            FROM shard_rows ORDER BY pos
            """,
            [round, shard, model_version, acquisition_fn, run_id, scored_at or utc_now()],
        )
        footer = json.dumps({**dict(facts or {}), "round": round, "shard": shard, "model_version": model_version})
        # COPY options take no bound parameters: the JSON text is quoted as an SQL literal.
        literal = footer.replace("'", "''")
        options = f"FORMAT parquet, COMPRESSION zstd, KV_METADATA {{ceal: '{literal}'}}"
        with atomic_target(path) as tmp:
            con.execute(f"COPY shard_out TO '{_sql_path(tmp)}' ({options})")
    finally:
        con.close()
    return path


def rescore_hint(round: int, shard: int) -> str:
    """How to rewrite a bad shard file: a plain re-run skips a shard whose file exists."""
    return (
        f"re-materialize candidate_scores partition r{round:04d}-s{shard:03d} with the config "
        "rescore_existing: true (a plain re-run skips a shard whose file exists)"
    )


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def load_score_shard(con: duckdb.DuckDBPyConnection, path: Path, table: str, *, round: int, shard: int) -> dict:
    """Read shard ``path`` into temporary ``table`` (``pos, frame_id, score``).

    Checks the columns and that the file is for ``(round, shard)``.

    Returns:
        The shard's constant columns (``model_version``, ``acquisition_fn``,
        ``run_id``, ``scored_at``) as a dict.

    Raises:
        ShardFileError: unreadable file, missing columns, wrong or mixed round,
            shard or provenance.
    """
    fix = rescore_hint(round, shard)
    if not path.is_file():
        raise ShardFileError(f"score shard {path} does not exist; {fix}")
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table}_raw AS SELECT * FROM read_parquet(?, file_row_number = true)",
            [str(path)],
        )
    except duckdb.Error as exc:
        raise ShardFileError(f"score shard {path} cannot be read as Parquet ({exc}); {fix}") from exc
    present = {row[0] for row in con.execute(f"DESCRIBE {table}_raw").fetchall()}
    missing = [c for c in SHARD_COLUMNS if c not in present]
    if missing:
        raise ShardFileError(
            f"score shard {path} lacks columns {missing}; write shards with "
            f"ceal_pipeline.core.history.write_score_shard (columns {list(SHARD_COLUMNS)}); {fix}"
        )
    distinct = ", ".join(f"count(DISTINCT {c}), any_value({c})" for c in SHARD_CONSTANTS)
    nulls = " + ".join(f"count(*) - count({c})" for c in SHARD_CONSTANTS)
    row = con.execute(f"SELECT count(*), {nulls}, {distinct} FROM {table}_raw").fetchone()
    n_rows, n_nulls, pairs = row[0], row[1], row[2:]
    constants = {c: pairs[2 * i + 1] for i, c in enumerate(SHARD_CONSTANTS)}
    if n_rows == 0:
        raise ShardFileError(f"score shard {path} has no rows (every pool shard has frames to score); {fix}")
    if (n_nulls or any(pairs[2 * i] != 1 for i in range(len(SHARD_CONSTANTS)))):
        raise ShardFileError(
            f"score shard {path} mixes several values (or has blanks) in {', '.join(SHARD_CONSTANTS)}; "
            f"a shard holds one round, shard, model and run; {fix}"
        )
    if (constants["round"] != round or constants["shard"] != shard):
        raise ShardFileError(
            f"score shard {path} holds round {constants['round']} shard {constants['shard']}, "
            f"not round {round} shard {shard} as asked; ingest it under its own round and shard, or {fix}"
        )
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {table} AS
            SELECT file_row_number AS pos, frame_id::VARCHAR AS frame_id, score::DOUBLE AS score
            FROM {table}_raw ORDER BY file_row_number
            """
        )
    except duckdb.ConversionException as exc:
        raise ShardFileError(f"score shard {path}: frame_id or score has the wrong type ({exc}); {fix}") from exc
    con.execute(f"DROP TABLE {table}_raw")
    return {k: v for k, v in constants.items() if k not in ("round", "shard")}
