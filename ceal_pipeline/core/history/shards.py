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

plus, when the scorer explains its scores (the pipeline's detector does), why
each frame scored what it scored (:mod:`ceal_pipeline.core.frame_explanation`):

=============== ===================== ==========================================
column          type                  meaning
=============== ===================== ==========================================
n_detections    INTEGER               objects the detector found in the frame
class_counts    MAP(VARCHAR, INTEGER) objects per detected class
most_uncertain  STRUCT(...)[]         up to 3 objects by decreasing localization
                                      entropy: ``class_name``, MC-mean box
                                      ``x y z l w h yaw``, MC std ``std_x ..
                                      std_yaw``, ``confidence``,
                                      ``localization_entropy`` (nats)
aggregate       VARCHAR               per-frame reduction: mean, max or sum
at_empty_floor  BOOLEAN               no detection; scored at the constant
                                      no-detection value (the floor)
=============== ===================== ==========================================

and, when the scorer embeds its frames (the pipeline's detector does, in the
same forward pass), ``embedding BLOB``: the frame's pooled BEV features as
little-endian float16 (:func:`read_shard_embeddings`), for the selection stage's
diversity.

and, when the acquisition function is a rank combination
(``core.detection_acquisition``: its value is a rank among the frames combined
together), one ``term_<name> DOUBLE`` column per term, each frame's own value,
with the terms' weights in the footer (``term_weights``). The ``score`` of such
a shard ranks its frames among the shard's; the merge recombines the terms over
all of the round's shards and ingests that (:mod:`.ingest`).

The merge ingests ``frame_id`` and ``score`` (or the recombined terms) only; the explanation stays in the
file, which the shard exchange keeps, and the UI and the export read it by frame.

Workers need no access to the history database (they may run on other machines
and write to shared storage); the single merge step ingests the files. The file
is written to a temporary name and renamed, so a killed worker never leaves a
truncated shard under the final name.

The shard exchange (:class:`ShardExchange`, below) is the folder these files
and the published candidate pools live in; the file format and the exchange are
one module so that a column added to the shard is added in one place.

The files the candidate pool step, the GPU scoring shards and the merge exchange.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from ceal_pipeline.atomic_files import atomic_target, remove_stale_temporaries
from ceal_pipeline.core.frame_explanation import BOX_FIELDS, FrameExplanation
from ceal_pipeline.core.history.connection import utc_now
from ceal_pipeline.core.round import shard_partition_key
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

#: Prefix of the optional per-frame term columns of a rank combination.
TERM_PREFIX = "term_"

#: The optional per-frame embedding column (little-endian float16 bytes).
EMBEDDING_COLUMN = "embedding"

#: The optional explanation columns, in file order (see the module docstring).
EXPLANATION_COLUMNS: tuple[str, ...] = ("n_detections", "class_counts", "most_uncertain", "aggregate",
                                        "at_empty_floor")


def _explanation_schema():
    import pyarrow as pa

    uncertain_object = pa.struct(
        [("class_name", pa.string())]
        + [(name, pa.float64()) for name in BOX_FIELDS]
        + [(f"std_{name}", pa.float64()) for name in BOX_FIELDS]
        + [("confidence", pa.float64()), ("localization_entropy", pa.float64())]
    )
    return pa.schema([
        ("pos", pa.int64()),
        ("n_detections", pa.int32()),
        ("class_counts", pa.map_(pa.string(), pa.int32())),
        ("most_uncertain", pa.list_(uncertain_object)),
        ("aggregate", pa.string()),
        ("at_empty_floor", pa.bool_()),
    ])


def _stage_explanations(con: duckdb.DuckDBPyConnection, explanations: Sequence[FrameExplanation], n: int,
                        what: str) -> None:
    """Temporary table ``shard_explanations`` (``pos`` + :data:`EXPLANATION_COLUMNS`), one row per frame."""
    import pyarrow as pa

    if len(explanations) != n:
        raise ValueError(f"{what}: {len(explanations)} explanations for {n} frames; give one per frame, in order")
    rows = []
    for pos, explanation in enumerate(explanations):
        if not isinstance(explanation, FrameExplanation):
            raise TypeError(f"{what}: explanation {pos} is a {type(explanation).__name__}, not a FrameExplanation")
        record = explanation.to_record()
        del record["acquisition_fn"]  # the shard's own column
        record["class_counts"] = list(record["class_counts"].items())
        rows.append({"pos": pos, **record})
    table = pa.Table.from_pylist(rows, schema=_explanation_schema())
    con.register("shard_explanations__arrow", table)
    con.execute("CREATE OR REPLACE TEMP TABLE shard_explanations AS SELECT * FROM shard_explanations__arrow")
    con.unregister("shard_explanations__arrow")


def _stage_embeddings(con: duckdb.DuckDBPyConnection, embeddings: np.ndarray, n: int, what: str) -> None:
    """Temporary table ``shard_embeddings`` (``pos``, ``embedding`` float16 bytes), one row per frame."""
    import pyarrow as pa

    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != n:
        raise ValueError(f"{what}: embeddings must be (n={n}, d), one vector per frame in order; got {vectors.shape}")
    limit = float(np.finfo(np.float16).max)
    if not np.isfinite(vectors).all() or (np.abs(vectors) > limit).any():
        raise ValueError(f"{what}: embeddings must be finite and within float16's range (|x| <= {limit:g})")
    packed = vectors.astype("<f2")
    table = pa.table({"pos": pa.array(np.arange(n), pa.int64()),
                      EMBEDDING_COLUMN: pa.array([row.tobytes() for row in packed], pa.binary())})
    con.register("shard_embeddings__arrow", table)
    con.execute("CREATE OR REPLACE TEMP TABLE shard_embeddings AS SELECT * FROM shard_embeddings__arrow")
    con.unregister("shard_embeddings__arrow")


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
    explanations: Sequence[FrameExplanation] | None = None,
    embeddings: np.ndarray | None = None,
    terms: Mapping[str, np.ndarray] | None = None,
    term_weights: Mapping[str, float] | None = None,
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
        explanations: one :class:`~ceal_pipeline.core.frame_explanation.FrameExplanation`
            per frame, in ``frame_ids`` order, written as the explanation columns;
            ``None`` writes a shard without them (as from a scorer that cannot explain).
        embeddings: ``(n, d)`` one vector per frame, in ``frame_ids`` order, stored as
            float16 in the ``embedding`` column; ``None`` writes none.
        terms, term_weights: a rank combination's per-frame terms (name -> ``(n,)``
            finite values in ``frame_ids`` order) and their weights (the same
            names), written as ``term_<name>`` columns and the footer's
            ``term_weights``; both or neither.

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
        term_columns = _term_columns(terms, term_weights, len(ids), what)
        stage(con, "shard_rows", {"frame_id": ids, "score": values, **term_columns})
        require_unique(con, "shard_rows", what)
        explained, join = "".join(f", s.{c}" for c in term_columns), ""
        if explanations is not None:
            _stage_explanations(con, explanations, len(ids), what)
            explained += "".join(f", e.{c}" for c in EXPLANATION_COLUMNS)
            join = "JOIN shard_explanations e USING (pos)"
        if embeddings is not None:
            _stage_embeddings(con, embeddings, len(ids), what)
            explained += f", v.{EMBEDDING_COLUMN}"
            join += " JOIN shard_embeddings v USING (pos)"
        con.execute(
            f"""
            CREATE TEMP TABLE shard_out AS
            SELECT frame_id, score, ?::INTEGER AS round, ?::INTEGER AS shard, ?::VARCHAR AS model_version,
                   ?::VARCHAR AS acquisition_fn, ?::VARCHAR AS run_id, ?::TIMESTAMP AS scored_at{explained}
            FROM shard_rows s {join} ORDER BY pos
            """,
            [round, shard, model_version, acquisition_fn, run_id, scored_at or utc_now()],
        )
        footer = json.dumps({**dict(facts or {}), "round": round, "shard": shard, "model_version": model_version,
                             **({"term_weights": dict(term_weights)} if term_columns else {})})
        # COPY options take no bound parameters: the JSON text is quoted as an SQL literal.
        literal = footer.replace("'", "''")
        options = f"FORMAT parquet, COMPRESSION zstd, KV_METADATA {{ceal: '{literal}'}}"
        with atomic_target(path) as tmp:
            con.execute(f"COPY shard_out TO '{_sql_path(tmp)}' ({options})")
    finally:
        con.close()
    return path


def _term_columns(terms: Mapping[str, np.ndarray] | None, weights: Mapping[str, float] | None, n: int,
                  what: str) -> dict[str, np.ndarray]:
    """``term_<name>`` -> ``(n,)`` float64 of a rank combination's terms, checked; ``{}`` for none."""
    if terms is None and weights is None:
        return {}
    if terms is None or weights is None or set(terms) != set(weights) or not terms:
        raise ValueError(f"{what}: give a rank combination's terms and term_weights together, with the same "
                         f"names (got terms {sorted(terms or {})}, weights {sorted(weights or {})})")
    columns = {}
    for name in sorted(terms):
        if not str(name).isidentifier():
            raise ValueError(f"{what}: term name {name!r} must be an identifier (it names a column)")
        values = np.asarray(terms[name], dtype=np.float64)
        if values.shape != (n,) or not np.isfinite(values).all():
            raise ValueError(f"{what}: term {name!r} must be ({n},) finite values, one per frame in order")
        columns[f"{TERM_PREFIX}{name}"] = values
    return columns


def rescore_hint(round: int, shard: int) -> str:
    """How to rewrite a bad shard file: a plain re-run skips a shard whose file exists."""
    return (
        f"re-materialize candidate_scores partition r{round:04d}-s{shard:03d} with the config "
        "rescore_existing: true (a plain re-run skips a shard whose file exists)"
    )


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def load_score_shard(con: duckdb.DuckDBPyConnection, path: Path, table: str, *, round: int, shard: int) -> dict:
    """Read shard ``path`` into temporary ``table`` (``pos, frame_id, score`` and any ``term_<name>``).

    Checks the columns and that the file is for ``(round, shard)``.

    Returns:
        The shard's constant columns (``model_version``, ``acquisition_fn``,
        ``run_id``, ``scored_at``) as a dict, with ``term_weights``: a rank
        combination's term name -> weight from the footer, or ``None``.

    Raises:
        ShardFileError: unreadable file, missing columns, wrong or mixed round,
            shard or provenance.
    """
    fix = rescore_hint(round, shard)
    if not path.is_file():
        raise ShardFileError(f"score shard {path} does not exist; {fix}")
    try:
        present = {row[0] for row in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()}
        missing = [c for c in SHARD_COLUMNS if c not in present]
        if missing:
            raise ShardFileError(
                f"score shard {path} lacks columns {missing}; write shards with "
                f"ceal_pipeline.core.history.write_score_shard (columns {list(SHARD_COLUMNS)}); {fix}"
            )
        terms = sorted(c[len(TERM_PREFIX):] for c in present if c.startswith(TERM_PREFIX))
        term_weights = _read_term_weights(path, terms, fix)
        term_columns = "".join(f", {TERM_PREFIX}{name}" for name in terms)
        # Only the columns the merge needs: the explanation columns stay in the file.
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table}_raw AS SELECT {', '.join(SHARD_COLUMNS)}{term_columns}, "
            "file_row_number FROM read_parquet(?, file_row_number = true)",
            [str(path)],
        )
    except duckdb.Error as exc:
        raise ShardFileError(f"score shard {path} cannot be read as Parquet ({exc}); {fix}") from exc
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
            SELECT file_row_number AS pos, frame_id::VARCHAR AS frame_id, score::DOUBLE AS score{
                "".join(f", {TERM_PREFIX}{name}::DOUBLE AS {TERM_PREFIX}{name}" for name in terms)}
            FROM {table}_raw ORDER BY file_row_number
            """
        )
    except duckdb.ConversionException as exc:
        raise ShardFileError(f"score shard {path}: frame_id or score has the wrong type ({exc}); {fix}") from exc
    con.execute(f"DROP TABLE {table}_raw")
    return {**{k: v for k, v in constants.items() if k not in ("round", "shard")}, "term_weights": term_weights}


def _read_term_weights(path: Path, terms: list[str], fix: str) -> dict[str, float] | None:
    """The footer's ``term_weights`` of a shard with term columns ``terms``; ``None`` without terms."""
    bad = [name for name in terms if not name.isidentifier()]
    if bad:
        raise ShardFileError(f"score shard {path} has term columns with odd names {bad}; {fix}")
    # A shard without terms needs no footer (its own writer may not have written one).
    weights = _read_facts(path, "score shard", fix, error=ShardFileError, required=bool(terms)).get("term_weights")
    if not terms and weights is None:
        return None
    valid = (isinstance(weights, dict) and sorted(weights) == terms
             and all(isinstance(w, (int, float)) and not isinstance(w, bool) and np.isfinite(w) and w >= 0
                     for w in weights.values()))
    if not valid:
        raise ShardFileError(
            f"score shard {path} has term columns {terms} but footer term_weights {weights!r}; a rank "
            f"combination's shard names the same terms in both, with finite weights >= 0; {fix}"
        )
    return {name: float(w) for name, w in weights.items()}


def read_shard_explanations(
    path: str | os.PathLike[str], frame_ids: Sequence[str] | None = None
) -> dict[str, FrameExplanation]:
    """The explanations a score shard carries, by frame id: all of them, or those of ``frame_ids``.

    A shard written without explanations (by a scorer that cannot explain, or
    before shards carried them) gives ``{}``: a reader shows such frames as
    unexplained rather than failing.

    Raises:
        ShardFileError: the file is missing or not Parquet.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) for a corrupt file
        raise ShardFileError(f"score shard {path} cannot be read as Parquet ({exc})") from exc
    if not set(EXPLANATION_COLUMNS) <= names:
        return {}
    wanted = None if frame_ids is None else [str(f) for f in frame_ids]
    if wanted is not None and not wanted:
        return {}
    table = pq.read_table(
        path, columns=["frame_id", "acquisition_fn", *EXPLANATION_COLUMNS],
        filters=None if wanted is None else [("frame_id", "in", wanted)],
    )
    return {row.pop("frame_id"): FrameExplanation.from_record(row) for row in table.to_pylist()}


def read_shard_embeddings(
    path: str | os.PathLike[str], frame_ids: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The per-frame embeddings a score shard carries, by frame id (float16 vectors): all of
    them, or those of ``frame_ids``. A shard written without embeddings gives ``{}``.

    Raises:
        ShardFileError: the file is missing or not Parquet.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, ValueError) as exc:
        raise ShardFileError(f"score shard {path} cannot be read as Parquet ({exc})") from exc
    wanted = None if frame_ids is None else [str(f) for f in frame_ids]
    if EMBEDDING_COLUMN not in names or (wanted is not None and not wanted):
        return {}
    table = pq.read_table(path, columns=["frame_id", EMBEDDING_COLUMN],
                          filters=None if wanted is None else [("frame_id", "in", wanted)])
    return {frame_id: np.frombuffer(blob, dtype="<f2") for frame_id, blob in zip(
        table.column("frame_id").to_pylist(), table.column(EMBEDDING_COLUMN).to_pylist())}


# -- the exchange: where pools are published for the workers and shards are left for the merge --

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
    #: a rank combination's term weights (the merge ranks its terms over the round), else ``None``
    term_weights: dict | None = None


def _read_facts(path: Path, what: str, fix: str, *, error: type[Exception] = ExchangeFileError,
                required: bool = True) -> dict:
    """The file's ``ceal`` key-value metadata with its ``rows``; ``error`` (naming ``fix``) when it
    cannot be read, or is absent and ``required`` (else ``{}``)."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) for a corrupt footer
        raise error(f"{what} {path} cannot be read as Parquet ({exc}); {fix}") from exc
    raw = (metadata.metadata or {}).get(METADATA_KEY)
    if raw is None:
        if not required:
            return {}
        raise error(f"{what} {path} carries no '{METADATA_KEY.decode()}' metadata; {fix}")
    try:
        facts = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path}: its '{METADATA_KEY.decode()}' metadata is not JSON ({exc}); {fix}")
    if not isinstance(facts, dict):
        raise error(f"{what} {path}: its metadata is {type(facts).__name__}, not an object; {fix}")
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

    def sync_pool(self, round_index: int, saved, model_version: str, parameters: dict) -> PublishedPool:
        """The round's published pool, (re)published from the history's ``saved`` pool
        (:class:`~ceal_pipeline.core.history.StoredCandidatePool`) when it is missing or differs
        from it, the round's detector or its recorded parameters."""
        published = self.published_pool(round_index)
        wanted = (len(saved), saved.n_shards, model_version, parameters)
        stale = published is None or wanted != (
            published.frames, published.n_shards, published.model_version, published.parameters)
        if stale:
            published = self.publish_pool(round_index, saved.frame_ids, saved.shards, saved.n_shards, model_version,
                                          parameters)
        return published

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
                          int(facts.get("forward_passes", 0)), float(facts.get("scoring_s", 0.0)),
                          facts.get("term_weights"))

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
        return self._read_by_shard(round_index, frame_ids, read_shard_explanations)

    def embeddings(self, round_index: int, frame_ids: Sequence[str]) -> dict:
        """Frame id -> its float16 embedding (pooled BEV features of the scoring pass) for those
        of ``frame_ids`` whose shard carries one (:func:`read_shard_embeddings`)."""
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
