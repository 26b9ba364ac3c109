"""Fixtures for the acquisition history specifications: a small registered catalog."""

from __future__ import annotations

import pytest

from ceal_pipeline.core.history import AcquisitionHistory

#: Frames in the default catalog: 40 frames in 4 sequences of 10.
N_FRAMES = 40


def frame_ids(n: int = N_FRAMES) -> list[str]:
    return [f"seq{i // 10}-frame{i:03d}" for i in range(n)]


def register(history: AcquisitionHistory, ids: list[str]) -> None:
    history.register_frame_arrays(ids, [i.split("-")[0] for i in ids])


@pytest.fixture
def history(tmp_path) -> AcquisitionHistory:
    """A fresh history with :data:`N_FRAMES` registered, unlabeled frames."""
    store = AcquisitionHistory(tmp_path / "history.duckdb", threads=1)
    register(store, frame_ids())
    return store


def provenance(**overrides) -> dict:
    """Keyword arguments naming a scoring run, for record_scores / write_score_shard."""
    return {"model_version": "detector-r0", "acquisition_fn": "localization_entropy", "run_id": "run-1", **overrides}


def table_counts(history: AcquisitionHistory) -> dict[str, int]:
    """Row count of every table: what 'nothing was written' is checked against."""
    import duckdb

    con = duckdb.connect(str(history.path))
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY table_name"
        ).fetchall()]
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        # The maintained state must be unchanged too, not only the row counts.
        counts["frame_state_digest"] = con.execute(
            "SELECT sum(hash(frame_key, is_labeled, is_pruned, is_quarantined, latest_score, latest_batch)) "
            "FROM frame_state"
        ).fetchone()[0]
        return counts
    finally:
        con.close()


def _query_one(history: AcquisitionHistory, sql: str, params: list | None = None) -> tuple:
    import duckdb

    con = duckdb.connect(str(history.path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchone()
    finally:
        con.close()


def _query_all(history: AcquisitionHistory, sql: str) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(history.path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def stale_latest_scores(history: AcquisitionHistory) -> int:
    """Frames whose maintained latest score differs from the one recomputed from the
    append-only events by the store's own view (the invariant every ingest keeps)."""
    return _query_one(history, """
        SELECT count(*) FROM frame_state s FULL JOIN latest_scores_from_events r USING (frame_key)
        WHERE s.latest_batch IS DISTINCT FROM r.batch_id OR s.latest_score IS DISTINCT FROM r.score
        """)[0]


def rejected_deliveries(history: AcquisitionHistory) -> list[tuple]:
    """``(path, round, reason)`` of every row of the ``rejected_deliveries`` table, by path."""
    return _query_all(history, "SELECT path, round, reason FROM rejected_deliveries ORDER BY path")


def recorded_round(history: AcquisitionHistory, round_index: int) -> dict:
    """The ``rounds`` row of ``round_index`` as stored: seed, parameters and ledger (JSON decoded)."""
    import json

    seed, parameters, ledger = _query_one(
        history, "SELECT seed, parameters, ledger FROM rounds WHERE round = ?", [round_index])
    return {"seed": seed, "parameters": json.loads(parameters), "ledger": None if ledger is None else json.loads(ledger)}
