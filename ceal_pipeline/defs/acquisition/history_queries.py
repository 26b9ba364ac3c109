"""Read-only questions the round assets ask the history beyond its Python API.

They use the store's documented tables and views (``labels``, ``frames``,
``score_event_log``) through a short read-only DuckDB connection with bound
parameters, like any SQL user of the history would.
"""

from __future__ import annotations

import os

import numpy as np


def _query(path: str | os.PathLike, sql: str, params: list) -> dict:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params).fetchnumpy()
    finally:
        con.close()


def label_rounds(path: str | os.PathLike) -> dict[str, int]:
    """frame id -> the round from which its label may be used (its first label event)."""
    cols = _query(
        path,
        "SELECT f.frame_id, min(l.round) AS round FROM labels l JOIN frames f USING (frame_key) GROUP BY f.frame_id",
        [],
    )
    return dict(zip((str(f) for f in cols["frame_id"]), (int(r) for r in cols["round"])))


def fresh_scores(path: str | os.PathLike, round_index: int, model_version: str) -> tuple[list[str], np.ndarray]:
    """Scores produced in ``round_index`` by ``model_version``: one per frame (its newest batch),
    ordered by frame id. What selection may use and what the freshness check verifies."""
    cols = _query(
        path,
        """
        SELECT frame_id, arg_max(score, batch_id) AS score FROM score_event_log
        WHERE round = ? AND model_version = ? GROUP BY frame_id ORDER BY frame_id
        """,
        [round_index, model_version],
    )
    return [str(f) for f in cols["frame_id"]], np.asarray(cols["score"], dtype=np.float64)
