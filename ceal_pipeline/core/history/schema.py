"""The acquisition history's DuckDB schema and its ordered migrations.

The schema is versioned: ``schema_version`` holds one row per applied
migration, and :func:`apply_migrations` brings any database (a fresh file or one
written by an older ceal-pipeline) to :data:`LATEST_VERSION` inside a single
transaction, so a crash mid-upgrade leaves the previous version intact. A
database newer than the code is refused rather than silently misread.

Migrations are append-only: never edit a released one, add the next version.

Layout (see ``store.py`` for the invariants the store maintains):

- ``frames``: one row per frame the history knows: its key, id and sequence
  (version 5 on; everything else about a frame is the frame catalog's, read by
  id). ``frame_key`` is a dense internal
  BIGINT surrogate (registration order); every large table refers to frames by
  it, because 10^8 score events carrying a string id would cost gigabytes and
  string joins are several times slower than integer ones.
- ``frame_state``: one row per frame with the *maintained* pool state: labeled,
  pruned, quarantined flags and the latest score. It is derived from the event
  tables (``labels``, ``prune_events``, ``quarantined_frames``,
  ``score_events``) and updated in the same transaction as them, so reading the
  unlabeled pool's latest scores is one scan of 10^7 narrow rows instead of an
  aggregation over 10^8 events per round.
- ``score_batches`` + ``score_events``: the append-only acquisition history.
  A batch is one ingest (a shard or an in-memory record) with the round, model
  version, acquisition function, run id and time it was scored; events are
  ``(batch_id, frame_key, score)``. Rows are never updated or deleted.
- ``rounds``, ``candidate_pool_rounds`` + ``candidate_pools``, ``selections``,
  ``prune_events``, ``exports``: one CEAL round's decisions; ``rounds.model_version``
  (version 5 on) is the detector whose scores the round selects from.
- ``label_deliveries`` + ``delivered_frames`` + ``delivered_boxes``: what the
  vendor delivered, as boxes in the pipeline's convention with their provenance;
  ``rejected_deliveries``: files refused, with the reason (``deliveries.py``).

Frame ids are deliberately not a PRIMARY KEY: DuckDB keeps ART indexes in memory
and rebuilds them on load, which at 10^7 string keys costs seconds and gigabytes
on every short-lived connection. The store enforces uniqueness itself, inside
the same transaction as each insert. Small tables (rounds, batches, exports) do
use primary keys.

All timestamps are UTC (``TIMESTAMP`` without zone, written by the store).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb

from ceal_pipeline.core.history.errors import SchemaTooNew


@dataclass(frozen=True)
class Migration:
    """One schema step: ``statements`` run in order, in the upgrade's transaction."""

    version: int
    description: str
    statements: tuple[str, ...]


_INITIAL_SCHEMA = (
    """
    CREATE TABLE frames (
        frame_key     BIGINT    NOT NULL,
        frame_id      VARCHAR   NOT NULL,
        sequence_id   VARCHAR   NOT NULL,
        timestamp_s   DOUBLE    NOT NULL,
        lidar_path    VARCHAR   NOT NULL,
        split         VARCHAR   NOT NULL,
        source        VARCHAR   NOT NULL,
        registered_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE frame_cameras (
        frame_key BIGINT  NOT NULL,
        camera    VARCHAR NOT NULL,
        path      VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE frame_state (
        frame_key      BIGINT  NOT NULL,
        is_labeled     BOOLEAN NOT NULL DEFAULT false,
        is_pruned      BOOLEAN NOT NULL DEFAULT false,
        is_quarantined BOOLEAN NOT NULL DEFAULT false,
        latest_score   DOUBLE,
        latest_round   INTEGER,
        latest_batch   INTEGER
    )
    """,
    """
    CREATE TABLE labels (
        frame_key  BIGINT    NOT NULL,
        round      INTEGER   NOT NULL,
        source     VARCHAR   NOT NULL,
        labeled_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE quarantined_frames (
        frame_id       VARCHAR   NOT NULL,
        reason         VARCHAR   NOT NULL,
        path           VARCHAR   NOT NULL,
        source         VARCHAR   NOT NULL,
        round          INTEGER,
        quarantined_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE score_batches (
        batch_id       INTEGER   PRIMARY KEY,
        round          INTEGER   NOT NULL,
        shard          INTEGER,
        model_version  VARCHAR   NOT NULL,
        acquisition_fn VARCHAR   NOT NULL,
        run_id         VARCHAR   NOT NULL,
        scored_at      TIMESTAMP NOT NULL,
        ingested_at    TIMESTAMP NOT NULL,
        source_path    VARCHAR,
        n_events       BIGINT    NOT NULL,
        fingerprint    HUGEINT   NOT NULL,
        UNIQUE (round, shard)
    )
    """,
    """
    CREATE TABLE score_events (
        batch_id  INTEGER NOT NULL,
        frame_key BIGINT  NOT NULL,
        score     DOUBLE  NOT NULL
    )
    """,
    """
    CREATE TABLE rounds (
        round      INTEGER   PRIMARY KEY,
        seed       BIGINT    NOT NULL,
        parameters VARCHAR   NOT NULL,
        started_at TIMESTAMP NOT NULL,
        ledger     VARCHAR,
        ledger_at  TIMESTAMP
    )
    """,
    """
    CREATE TABLE candidate_pool_rounds (
        round      INTEGER   PRIMARY KEY,
        n_frames   BIGINT    NOT NULL,
        n_shards   INTEGER   NOT NULL,
        seed       BIGINT,
        created_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE candidate_pools (
        round     INTEGER NOT NULL,
        position  INTEGER NOT NULL,
        frame_key BIGINT  NOT NULL,
        shard     INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE selections (
        round       INTEGER   NOT NULL,
        rank        INTEGER   NOT NULL,
        frame_key   BIGINT    NOT NULL,
        score       DOUBLE    NOT NULL,
        selected_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE prune_events (
        event_id  BIGINT    NOT NULL,
        round     INTEGER,
        frame_key BIGINT    NOT NULL,
        action    VARCHAR   NOT NULL CHECK (action IN ('prune', 'unprune')),
        reason    VARCHAR   NOT NULL,
        event_at  TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE exports (
        round       INTEGER   PRIMARY KEY,
        path        VARCHAR   NOT NULL,
        n_frames    BIGINT    NOT NULL,
        digest      VARCHAR   NOT NULL,
        manifest    VARCHAR   NOT NULL,
        exported_at TIMESTAMP NOT NULL
    )
    """,
    # The event log in the shape the design speaks of: one row per score event.
    """
    CREATE VIEW score_event_log AS
    SELECT f.frame_id, b.round, b.model_version, b.acquisition_fn, e.score,
           b.scored_at, b.run_id, b.shard, e.batch_id
    FROM score_events e
    JOIN score_batches b USING (batch_id)
    JOIN frames f USING (frame_key)
    """,
    # Each frame's latest score as maintained in frame_state (fast path).
    """
    CREATE VIEW latest_scores AS
    SELECT f.frame_id, s.latest_round AS round, b.model_version, b.acquisition_fn,
           s.latest_score AS score, b.scored_at, b.run_id, s.latest_batch AS batch_id
    FROM frame_state s
    JOIN frames f USING (frame_key)
    JOIN score_batches b ON b.batch_id = s.latest_batch
    """,
    # The same, recomputed from the events: newest round wins, then newest batch.
    # Used by consistency checks and to rebuild frame_state; O(events).
    """
    CREATE VIEW latest_scores_from_events AS
    SELECT e.frame_key,
           arg_max(e.score, b.round::BIGINT * 4294967296 + e.batch_id) AS score,
           max(b.round) AS round,
           arg_max(e.batch_id, b.round::BIGINT * 4294967296 + e.batch_id) AS batch_id
    FROM score_events e
    JOIN score_batches b USING (batch_id)
    GROUP BY e.frame_key
    """,
    # The unlabeled pool CEAL samples from: not labeled, pruned or quarantined.
    """
    CREATE VIEW unlabeled_pool AS
    SELECT f.frame_id, f.sequence_id, s.latest_score, s.latest_round
    FROM frame_state s
    JOIN frames f USING (frame_key)
    WHERE NOT (s.is_labeled OR s.is_pruned OR s.is_quarantined)
    """,
)

#: Ordered schema steps; the last one's version is the current schema.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema: catalog, score events, rounds, pools, selections, pruning, exports", _INITIAL_SCHEMA),
    Migration(
        2,
        "the history is the single store of round state: a pool records the seconds its draw took "
        "(formerly only in the shard folder's pool.json)",
        ("ALTER TABLE candidate_pool_rounds ADD COLUMN sampling_s DOUBLE",),
    ),
    Migration(
        3,
        "export withdrawals: frames of an export whose labels will not come may be bought again",
        (
            """
            CREATE TABLE export_withdrawals (
                round        INTEGER   NOT NULL,
                frame_key    BIGINT    NOT NULL,
                reason       VARCHAR   NOT NULL,
                withdrawn_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
    Migration(
        4,
        "label deliveries: the vendor's boxes with provenance (round, file, vendor, time), and rejected files",
        (
            """
            CREATE TABLE label_deliveries (
                delivery_id  INTEGER   PRIMARY KEY,
                round        INTEGER   NOT NULL,
                path         VARCHAR   NOT NULL,
                sha256       VARCHAR   NOT NULL UNIQUE,
                format       VARCHAR   NOT NULL,
                vendor       VARCHAR   NOT NULL,
                n_frames     BIGINT    NOT NULL,
                n_boxes      BIGINT    NOT NULL,
                ingested_at  TIMESTAMP NOT NULL
            )
            """,
            """
            CREATE TABLE delivered_boxes (
                delivery_id INTEGER NOT NULL,
                frame_key   BIGINT  NOT NULL,
                box_index   INTEGER NOT NULL,
                x DOUBLE NOT NULL, y DOUBLE NOT NULL, z DOUBLE NOT NULL,
                l DOUBLE NOT NULL, w DOUBLE NOT NULL, h DOUBLE NOT NULL,
                yaw DOUBLE NOT NULL,
                class_name  VARCHAR NOT NULL
            )
            """,
            # One row per labeled frame of a delivery (also frames delivered with 0 boxes).
            """
            CREATE TABLE delivered_frames (
                delivery_id INTEGER NOT NULL,
                frame_key   BIGINT  NOT NULL,
                n_boxes     INTEGER NOT NULL
            )
            """,
            """
            CREATE TABLE rejected_deliveries (
                path        VARCHAR   NOT NULL,
                sha256      VARCHAR   NOT NULL,
                round       INTEGER,
                reason      VARCHAR   NOT NULL,
                rejected_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
)

MIGRATIONS += (
    Migration(
        5,
        "one owner per fact: a frame's attributes are the frame catalog's (frames keeps key, id and sequence; "
        "frame_cameras goes); the round record holds the round's detector version",
        (
            "DROP TABLE frame_cameras",
            "ALTER TABLE frames DROP COLUMN timestamp_s",
            "ALTER TABLE frames DROP COLUMN lidar_path",
            "ALTER TABLE frames DROP COLUMN split",
            "ALTER TABLE frames DROP COLUMN source",
            "ALTER TABLE frames DROP COLUMN registered_at",
            "ALTER TABLE rounds ADD COLUMN model_version VARCHAR",
        ),
    ),
)

LATEST_VERSION: int = MIGRATIONS[-1].version

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER   PRIMARY KEY,
    description VARCHAR   NOT NULL,
    applied_at  TIMESTAMP NOT NULL
)
"""


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest applied migration version, 0 for a database never migrated."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version' AND schema_name = 'main'"
    ).fetchone()[0]
    if not exists:
        return 0
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def _check_ordered(migrations: tuple[Migration, ...]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3, ... in order; got versions {versions}")


def apply_migrations(
    con: duckdb.DuckDBPyConnection, migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[int]:
    """Bring the database behind ``con`` to the last of ``migrations``.

    Runs every pending migration and records it in ``schema_version``, all in one
    transaction: either the database reaches the latest version or it stays at
    the version it had. Applying twice is a no-op.

    Returns:
        The versions applied now (empty when the database was already current).

    Raises:
        SchemaTooNew: the database records a version this code does not know.
    """
    _check_ordered(migrations)
    latest = migrations[-1].version if migrations else 0
    con.begin()
    try:
        con.execute(_VERSION_TABLE)
        current = schema_version(con)
        if current > latest:
            raise SchemaTooNew(
                f"the acquisition history is at schema version {current} but this ceal-pipeline knows "
                f"versions up to {latest}: upgrade ceal-pipeline (or open a copy of the database with the "
                "version that wrote it)"
            )
        applied = []
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for migration in migrations[current:]:
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)", [migration.version, migration.description, now]
            )
            applied.append(migration.version)
    except BaseException:
        con.rollback()
        raise
    con.commit()
    return applied
